"""trainer.precision=auto: bf16 autocast where the CPU runs it natively (AMX or AVX512-BF16), else
fp32. The CPU's flags are mocked both ways, so the test holds on whatever machine runs it."""

import pytest
import torch

from dlpy.build import build_trainer
from dlpy.precision import native_bf16, resolve_precision

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
