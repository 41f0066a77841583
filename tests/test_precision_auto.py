"""trainer.precision=auto: bf16 autocast where the CPU runs it natively (AMX or AVX512-BF16), else
fp32. The CPU's flags are mocked both ways, so the test holds on whatever machine runs it."""

import logging

import pytest
import torch

from dlpy.build import build_trainer
from dlpy.precision import native_bf16, resolve_precision
from dlpy.train import announce

CPU = torch.device("cpu")
FLAGS = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")


@pytest.fixture
def cpu_flags(monkeypatch):
    """Set which of AMX and AVX512-BF16 the CPU reports, by name: cpu_flags(amx=True)."""

    def set_flags(amx: bool = False, avx512_bf16: bool = False) -> None:
        for flag, value in zip(FLAGS, (amx, avx512_bf16), strict=True):
            monkeypatch.setattr(torch.cpu, flag, lambda value=value: value, raising=False)

    return set_flags


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "expected"),
    [(True, False, "bf16"), (False, True, "bf16"), (True, True, "bf16"), (False, False, "fp32")],
)
def test_auto_picks_bf16_only_where_the_cpu_runs_it_natively(cpu_flags, amx, avx512_bf16, expected):
    cpu_flags(amx=amx, avx512_bf16=avx512_bf16)
    assert resolve_precision("auto", CPU) == expected
    assert (native_bf16(CPU) is not None) == (expected == "bf16")


@pytest.mark.parametrize("name", ["fp32", "bf16", "fp16"])
def test_a_precision_named_is_kept_whatever_the_cpu(cpu_flags, name):
    cpu_flags(amx=True)
    assert resolve_precision(name, CPU) == name
    cpu_flags()
    assert resolve_precision(name, CPU) == name


@pytest.mark.parametrize(("amx", "dtype"), [(True, torch.bfloat16), (False, None)])
def test_the_trainer_autocasts_as_auto_resolved(make_cfg, tmp_path, cpu_flags, amx, dtype):
    cpu_flags(amx=amx)
    trainer = build_trainer(make_cfg("trainer.precision=auto", "trainer.device=cpu"), tmp_path)
    assert trainer.precision.name == ("bf16" if amx else "fp32")
    assert trainer.precision.dtype == dtype
    with trainer.precision.autocast():
        product = torch.ones(4, 4) @ torch.ones(4, 4)
    assert product.dtype == (dtype or torch.float32)


@pytest.mark.parametrize(
    ("amx", "precision", "hint"),
    [
        (True, "fp32", "runs bf16 natively"),  # a faster choice the user has not made
        (False, "bf16", "bf16 is emulated"),  # a slower one they have
        (True, "bf16", None),
        (False, "fp32", None),
    ],
)
def test_the_first_lines_say_when_another_precision_would_be_faster(
    make_cfg, tmp_path, caplog, cpu_flags, amx, precision, hint
):
    cpu_flags(amx=amx)
    cfg = make_cfg(f"trainer.precision={precision}", "trainer.device=cpu")
    trainer = build_trainer(cfg, tmp_path)
    with caplog.at_level(logging.INFO, logger="dlpy"):
        announce(cfg, trainer, tmp_path)
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0].startswith(f"training {cfg.model.name} on {cfg.dataset.name}: cpu, {precision}")
    hints = [line for line in lines[1:] if "bf16" in line]
    assert [hint in line for line in hints] == ([True] if hint else [])
