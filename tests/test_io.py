"""Files are never half-written, and checkpoints never run code."""

import os
import pickle

import pytest
import torch

from dlpy.errors import DlpyError
from dlpy.io import atomic_write, load_checkpoint, save_checkpoint, save_json


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "metrics.json"
    save_json({"test/acc": 0.9}, path)

    def half_then_crash(f):
        f.write(b'{"test/acc": 0.')
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(path, half_then_crash)
    assert path.read_text().strip().replace(" ", "").replace("\n", "") == '{"test/acc":0.9}'
    assert os.listdir(tmp_path) == ["metrics.json"]  # no temporary file left behind


def test_checkpoint_round_trip(tmp_path):
    state = {"task": {"w": torch.arange(3.0)}, "step": 7}
    save_checkpoint(state, tmp_path / "c.pt")
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded["step"] == 7 and torch.equal(loaded["task"]["w"], state["task"]["w"])


class RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_a_pickle_carrying_code_is_refused_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"task": {}, "payload": RunsCode()}, path)
    with pytest.raises(DlpyError, match=str(path)):
        load_checkpoint(path)
    assert not (tmp_path / "pwned.txt").exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", pickle.dumps([1, 2, 3])])
def test_truncated_or_foreign_files_fail_naming_the_file(content, tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(DlpyError, match=str(path)):
        load_checkpoint(path)


def test_a_truncated_checkpoint_fails_naming_the_file(tmp_path):
    path = tmp_path / "cut.pt"
    save_checkpoint({"task": {"w": torch.zeros(1000)}}, path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DlpyError, match=str(path)):
        load_checkpoint(path)
