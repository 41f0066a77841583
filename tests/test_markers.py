"""The markers of pyproject.toml: tests marked gpu are skipped, with the reason, without CUDA."""

import pytest
import torch

GPU_TEST = """
import pytest


@pytest.mark.gpu
def test_on_the_gpu():
    pass
"""


@pytest.mark.parametrize("cuda", [False, True], ids=["cpu-only", "with-cuda"])
def test_a_test_marked_gpu_is_skipped_with_the_reason_where_there_is_no_cuda(
    pytester, monkeypatch, cuda
):
    # The machine's answer is replaced, so both cases run anywhere; the inner pytest runs in this
    # process with tests/conftest.py as a plugin, the way the suite loads it.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    pytester.makepyfile(test_gpu=GPU_TEST)
    result = pytester.runpytest("-p", "conftest", "-rs", "-o", "markers=gpu: needs a CUDA GPU")
    if cuda:
        result.assert_outcomes(passed=1)
    else:
        result.assert_outcomes(skipped=1)
        result.stdout.fnmatch_lines(["SKIPPED * needs a CUDA GPU"])
