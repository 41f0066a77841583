"""Gradient clipping (trainer.grad_clip, grad_clip_mode, grad_clip_value) against hand-computed
gradients: global norm, each tensor's norm (Keras's clipnorm), each element's value."""

import pytest
import torch

from dlpy.build import build_trainer
from dlpy.errors import DlpyError
from dlpy.precision import Precision, clip


def with_grads(*grads):
    params = [torch.zeros(len(g), requires_grad=True) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = torch.tensor(g)
    return params


def grads(params):
    return [p.grad.tolist() for p in params]


def test_the_global_norm_scales_every_gradient_by_one_factor():
    params = with_grads([3.0, 4.0], [0.0, 12.0])  # global norm 13
    clip(params, 6.5, 0.0, "global")
    assert grads(params) == [pytest.approx([1.5, 2.0]), pytest.approx([0.0, 6.0])]


def test_per_tensor_clips_each_norm_alone_and_leaves_small_ones():
    params = with_grads([3.0, 4.0], [0.6, 0.8])  # norms 5 and 1
    clip(params, 2.5, 0.0, "per_tensor")
    assert grads(params) == [pytest.approx([1.5, 2.0]), pytest.approx([0.6, 0.8])]


def test_by_value_clips_each_element_then_the_norm():
    params = with_grads([3.0, -0.5], [-4.0, 0.0])
    clip(params, 0.0, 1.0, "global")
    assert grads(params) == [[1.0, -0.5], [-1.0, 0.0]]
    clip(params, 0.75, 0.0, "per_tensor")  # [1, -0.5] has norm sqrt(1.25)
    scale = 0.75 / 1.25**0.5
    assert grads(params) == [pytest.approx([scale, -0.5 * scale]), pytest.approx([-0.75, 0.0])]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_a_step_clips_the_true_gradients_each_tensor_alone(precision):
    # loss = a.x + b.y: the gradients are x and y; fp16 scales the loss and unscales first
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    optimizer = torch.optim.SGD([a, b], lr=1.0)
    step = Precision(torch.device("cpu"), precision, 2.5, False, grad_clip_mode="per_tensor")
    loss = a @ torch.tensor([3.0, 4.0]) + b @ torch.tensor([0.6, 0.8])
    assert not step.step(loss, optimizer, None)
    assert a.tolist() == pytest.approx([-1.5, -2.0])
    assert b.tolist() == pytest.approx([-0.6, -0.8])


@pytest.mark.parametrize(
    "override, key",
    [
        ("trainer.grad_clip_value=-1", "trainer.grad_clip_value"),
        ("trainer.grad_clip_value=nan", "trainer.grad_clip_value"),
        ("trainer.grad_clip=-0.5", "trainer.grad_clip"),
        ("trainer.grad_clip_mode=layer", "trainer.grad_clip_mode"),
    ],
)
def test_bad_clipping_options_name_their_key(override, key, make_cfg, tmp_path):
    with pytest.raises(DlpyError, match=key):
        build_trainer(make_cfg("model=mlp", "~logger", override), tmp_path)
