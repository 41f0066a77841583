"""The command line as a user runs it: subprocesses, exit codes, messages, run folders."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST

from dlpy.errors import DlpyError
from dlpy.train import train


def dlpy(*args, cwd, data_dir=None, check=True):
    # the cache of `dlpy list` goes to the test's folder, not the home's
    env = {**os.environ, "DLPY_DATA_DIR": str(data_dir or "/nonexistent")}
    env["XDG_CACHE_HOME"] = str(cwd / ".cache")
    proc = subprocess.run(
        [sys.executable, "-m", "dlpy", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and proc.returncode:
        raise AssertionError(
            f"dlpy {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def test_console_script_is_installed():
    assert (Path(sys.executable).parent / "dlpy").exists()


def test_help_lists_the_subcommands(tmp_path):
    out = dlpy("--help", cwd=tmp_path).stdout
    for command in ("train", "eval", "sample", "visualize", "report", "list"):
        assert f"\n  {command} " in out


@pytest.mark.slow
def test_list_prints_every_registered_name_with_a_description(tmp_path):
    from dlpy.registry import ALL

    out = dlpy("list", cwd=tmp_path).stdout
    for registry in ALL:
        for name, description in registry.items():
            assert f"  {name}" in out and description in out


def test_list_of_a_name_prints_each_builder_of_it_with_its_declared_options(run_cli):
    status, out, _ = run_cli("list", "vae", "optimizer/adam")
    assert status in (0, None)
    assert out.startswith("model vae: ") and "\ntask vae: " in out  # a model and a task
    assert "  latent       an integer >= 1; default 20\n" in out
    assert "  beta  a number >= 0; default 1.0\n" in out
    assert "  betas         a list, each a number in [0, 1); default (0.9, 0.999)\n" in out
    assert "in_channels" in out and "  net " not in out  # what dlpy gives is left out
    status, _, err = run_cli("list", "vea")
    assert status == 2 and err.count("\n") == 1 and "Did you mean 'vae'?" in err


@pytest.mark.slow
def test_list_reads_its_cache_without_torch_until_a_module_changes(tmp_path, monkeypatch):
    first = dlpy("list", cwd=tmp_path).stdout
    no_torch = tmp_path / "no_torch" / "torch"
    no_torch.mkdir(parents=True)
    (no_torch / "__init__.py").write_text("raise ImportError('torch was imported')")
    monkeypatch.setenv("PYTHONPATH", str(no_torch.parent))  # a torch that cannot be imported
    assert dlpy("list", cwd=tmp_path).stdout == first
    (cache,) = (tmp_path / ".cache" / "dlpy").glob("registries-*.json")
    cache.write_text("{half a file")
    broken = dlpy("list", cwd=tmp_path, check=False)  # unreadable: rebuilt, so torch is needed
    assert "torch was imported" in broken.stderr


@pytest.mark.parametrize(
    "choice, expected", [("nosuch", "Known model presets: "), ("cnnn", "Did you mean 'cnn'?")]
)
def test_unknown_model_lists_the_known_ones_without_a_traceback(choice, expected, tmp_path):
    proc = dlpy("train", f"model={choice}", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert expected in proc.stderr and "resnet" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.slow
def test_bad_value_exits_with_the_key_and_no_traceback(tmp_path, data_dir):
    proc = dlpy("train", *FAST, "trainer.device=tpu", cwd=tmp_path, data_dir=data_dir, check=False)
    assert proc.returncode == 2
    assert "trainer.device" in proc.stderr and "Traceback" not in proc.stderr


def test_cfg_job_prints_the_composed_config(tmp_path):
    out = dlpy("train", "model=resnet", "--cfg", "job", cwd=tmp_path).stdout
    assert "name: resnet" in out and "depth: 20" in out


@pytest.mark.slow
def test_train_then_eval_then_resume_in_the_same_run_folder(tmp_path, data_dir):
    run = tmp_path / "run"
    out = dlpy(
        "train", *FAST, "model=mlp", f"hydra.run.dir={run}", cwd=tmp_path, data_dir=data_dir
    ).stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert f"test/acc {metrics['test/acc']:.4f}" in out and str(run) in out
    assert {"config.yaml", "overrides.yaml"} <= {p.name for p in (run / ".hydra").iterdir()}
    assert (run / "checkpoints" / "best.pt").is_file() and list(run.glob("events.out.tfevents.*"))

    evaluated = dlpy("eval", str(run), "trainer.device=cpu", cwd=tmp_path, data_dir=data_dir).stdout
    assert f"test/acc     {metrics['test/acc']:.4f}" in evaluated

    dlpy(
        "train",
        *FAST,
        "model=mlp",
        "trainer.max_epochs=2",
        f"trainer.resume={run}",
        cwd=tmp_path,
        data_dir=data_dir,
    )
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2
    assert not (tmp_path / "outputs").exists()  # the resumed run wrote into its own folder


@pytest.mark.slow
def test_multirun_leaves_one_folder_per_job_with_hparams(tmp_path, data_dir):
    dlpy("train", "-m", *FAST, "model=mlp,cnn", cwd=tmp_path, data_dir=data_dir)
    jobs = sorted((tmp_path / "outputs" / "multirun").glob("*/*/model=*"))
    assert [job.name for job in jobs] == [
        "model=cnn",
        "model=mlp",
    ]  # named by what varies, not by number
    for job, model in zip(jobs, ("cnn", "mlp"), strict=False):
        assert json.loads((job / "metrics.json").read_text())["status"] == "finished"
        assert f"name: {model}" in (job / ".hydra" / "config.yaml").read_text()
        events = b"".join(p.read_bytes() for p in job.glob("hparams/events.out.tfevents.*"))
        assert b"_hparams_/session_start_info" in events  # what TensorBoard's HPARAMS tab reads


@pytest.mark.slow
def test_a_failed_run_says_so_in_its_metrics(tmp_path, data_dir):
    run = tmp_path / "run"
    proc = dlpy(
        "train",
        *FAST,
        "model=mlp",
        "dataset.batch_size=0",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
        data_dir=data_dir,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "dataset.batch_size" in metrics["error"]


@pytest.mark.slow
def test_a_failing_job_does_not_sink_the_sweep(tmp_path, data_dir):
    args = ("train", "-m", *FAST, "model=mlp", "optimizer.lr=0.01,-1")
    proc = dlpy(*args, cwd=tmp_path, data_dir=data_dir, check=False)
    sweep = next((tmp_path / "outputs" / "multirun").glob("*/*"))
    # the other job ran to the end, and the sweep's status says one did not
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        f"dlpy: error: sweep {sweep.relative_to(tmp_path)}: 1 of 2 jobs failed (optimizer.lr=-1); "
        "each one's error is in the report above and in its metrics.json"
    )
    jobs = [sweep / f"optimizer.lr={lr}" for lr in ("0.01", "-1")]
    status = [json.loads((job / "metrics.json").read_text()) for job in jobs]
    assert [s["status"] for s in status] == ["finished", "failed"]
    assert "optimizer.lr" in status[1]["error"] and "test/acc" in status[0]

    report = dlpy("report", str(sweep), cwd=tmp_path).stdout  # the failure is listed, not a crash
    assert "sweep" in report and "2 jobs, 1 finished" in report
    assert f"| optimizer.lr=-1 | failed | {status[1]['error']} |" in report
    assert f"{status[0]['test/acc']:.4f}" in report


@pytest.mark.parametrize(
    "override, key",
    [
        ("dataset.batch_size=0", "dataset.batch_size"),
        ("optimizer.lr=-0.1", "optimizer.lr"),
        ("trainer.device=tpu", "trainer.device"),
        ("trainer.precision=fp8", "trainer.precision"),
        ("trainer.max_epochs=-1", "trainer.max_epochs"),
        ("+model.bogus=1", "bogus"),
        ("+optimizer.bogus=1", "bogus"),
    ],
)
def test_invalid_values_fail_before_training_naming_the_key(override, key, make_cfg, tmp_path):
    with pytest.raises(DlpyError, match=key.replace(".", r"\.")):
        train(make_cfg("model=mlp", override), tmp_path)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.slow
def test_checkpoint_of_another_model_is_refused_naming_the_file(make_cfg, tmp_path):
    train(make_cfg("model=mlp"), tmp_path / "mlp")
    checkpoint = tmp_path / "mlp" / "checkpoints" / "last.pt"
    with pytest.raises(DlpyError, match=f"{checkpoint}.*mlp"):
        train(make_cfg("model=cnn", f"trainer.resume={checkpoint}"), tmp_path / "cnn")


def test_resume_from_a_missing_folder_fails_naming_it(tmp_path):
    proc = dlpy("train", f"trainer.resume={tmp_path / 'nope'}", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and str(tmp_path / "nope") in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "model, grids",
    [
        ("vae", {"samples", "reconstructions", "interpolation"}),
        ("dcgan", {"samples"}),
        ("autoencoder", {"reconstructions"}),
        ("cnn", {"predictions"}),
    ],
)
def test_sample_writes_the_png_grids_of_the_best_checkpoint(model, grids, tmp_path, data_dir):
    run = tmp_path / "run"
    dlpy("train", *FAST, f"model={model}", f"hydra.run.dir={run}", cwd=tmp_path, data_dir=data_dir)
    printed = dlpy(
        "sample", str(run), "n=16", "trainer.device=cpu", cwd=tmp_path, data_dir=data_dir
    ).stdout
    written = {p.stem for p in (run / "samples").glob("*.png")}
    assert written == grids and all(str(run / "samples" / f"{g}.png") in printed for g in grids)
    from PIL import Image

    with Image.open(run / "samples" / f"{sorted(grids)[-1]}.png") as image:
        assert image.mode == "RGB" and min(image.size) > 28


@pytest.mark.slow
def test_sample_prints_one_passage_per_temperature_for_a_character_model(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question. " * 150)
    run = tmp_path / "run"
    dlpy(
        "train",
        "trainer=debug",
        "~callbacks.progress_bar",
        "model=char_lstm",
        f"dataset.path={corpus}",
        "dataset.val_size=300",
        "dataset.test_size=300",
        "model.hidden=16",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
    )
    out = dlpy(
        "sample", str(run), "temperature=0.2,1.2", "length=40", "trainer.device=cpu", cwd=tmp_path
    ).stdout
    passages = out.split("--- temperature ")[1:]
    assert [p.split(" ---")[0] for p in passages] == ["0.2", "1.2"]
    prompt = corpus.read_text()[-600:-540]
    for passage in passages:
        text = passage.split("---\n", 1)[1].rstrip("\n")
        assert text.startswith(f"[{prompt}]") and len(text) >= len(prompt) + 42  # marked off
    assert sorted(p.name for p in (run / "samples").glob("*.txt")) == [
        "temperature_0.2.txt",
        "temperature_1.2.txt",
    ]
    refused = dlpy(
        "sample", str(run), "temperature=x", "trainer.device=cpu", cwd=tmp_path, check=False
    )
    assert refused.returncode == 2 and "temperature" in refused.stderr


def test_train_help_lists_every_group_with_its_presets_and_the_composed_config(capsys):
    from dlpy.cli import main

    assert main(["train", "--help", "model=mlp", "trainer.max_epochs=7"]) == 0
    out = capsys.readouterr().out
    from dlpy import presets

    assert f"model: {', '.join(presets('model'))}" in out
    assert "optimizer: adam, adamw, rmsprop, sgd" in out
    assert "  max_epochs: 7\n" in out and "name: mlp\n" in out
    assert "hydra" not in out.partition("== Config ==")[2].replace("--hydra-help", "")


@pytest.mark.parametrize(
    "command, options, message",
    [
        ("eval", ["episodes=100000"], "episodes must be an integer in [1, 10000], got 100000"),
        ("eval", ["episodes=-3"], "episodes must be an integer in [1, 10000], got -3"),
        ("eval", ["record=maybe"], "record must be true or false, got 'maybe'"),
        ("sample", ["n=0"], "n must be an integer in [1, 1024], got 0"),
        ("sample", ["n=many"], "n must be an integer in [1, 1024], got 'many'"),
        ("sample", ["length=100001"], "length must be an integer in [1, 10000], got 100001"),
        ("sample", ["temperature=0.5,-1"], "temperature[1] must be a number > 0, got -1.0"),
        ("sample", ["temperature=nan"], "temperature[0] must be a number > 0, got nan"),
        ("sample", ["temperature=0"], "temperature[0] must be a number > 0, got 0.0"),
        ("predict", ["topk=0", "a.png"], "topk must be an integer >= 1, got 0"),
        ("predict", ["gradcam=maybe", "a.png"], "gradcam must be true or false, got 'maybe'"),
        ("visualize", ["kind=filters", "steps=0"], "steps must be an integer in [1, 10000], got 0"),
        ("visualize", ["kind=filters", "lr=-1"], "lr must be a number > 0, got -1.0"),
        ("visualize", ["kind=gradcam", "n=100000"], "n must be an integer in [1, 256], got 100000"),
        ("visualize", ["kind=deepdream", "size=99999"], "size must be an integer in [1, 2048]"),
        ("visualize", ["kind=deepdream", "octaves=0"], "octaves must be an integer in [1, 10]"),
        ("visualize", ["kind=style_transfer", "solver=sgd"], "solver must be one of 'lbfgs', "),
    ],
)
def test_command_options_out_of_range_are_refused_before_the_run_is_read(
    command, options, message, tmp_path, capsys
):
    """A folder that is no run: each option is checked before it would be read."""
    from dlpy.cli import main

    assert main([command, str(tmp_path / "no_run"), *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dlpy: error: {message}") and len(err.strip().splitlines()) == 1
