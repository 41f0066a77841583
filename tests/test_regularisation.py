"""model.task.l2: Keras's kernel_regularizer=l2(w), a loss term w * sum(k^2) on the dense and
convolution kernels, checked against its closed-form gradient 2 * w * k."""

import pytest
import torch
from torch import nn

from dlpy.build import build_task
from dlpy.errors import DlpyError
from dlpy.tasks.base import l2_penalty, with_penalties


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3), nn.Embedding(4, 2)
    )


def test_the_l2_gradient_is_twice_the_weight_times_each_kernel_and_spares_the_rest():
    net = small_net()
    l2_penalty(net, 0.001).backward()
    conv, norm, _, dense, embedding = net
    assert torch.allclose(conv.weight.grad, 2 * 0.001 * conv.weight)
    assert torch.allclose(dense.weight.grad, 2 * 0.001 * dense.weight)
    # biases, batch norm's scale and embeddings carry no penalty (Keras: kernels only)
    spared = (conv.bias, dense.bias, norm.weight, norm.bias, embedding.weight)
    assert all(p.grad is None for p in spared)


def test_the_penalty_is_the_weight_times_the_sum_of_squares_and_not_torchs_weight_decay():
    net = small_net()
    conv, _, _, dense, _ = net
    expected = 0.001 * (conv.weight.square().sum() + dense.weight.square().sum())
    loss = torch.tensor(1.0)
    assert torch.allclose(with_penalties(loss, net, l2=0.001), 1 + expected)
    assert with_penalties(loss, net) is loss  # no term, no extra node
    # torch's weight_decay=0.001 adds 0.001 * w to the gradient: half of l2(0.001)'s 0.002 * w
    w = dense.weight.detach().clone().requires_grad_()
    w.grad = torch.zeros_like(w)
    torch.optim.SGD([w], lr=1.0, weight_decay=0.001).step()
    l2_penalty(nn.Sequential(dense), 0.001).backward()
    decay = (dense.weight - w).detach()
    assert torch.allclose(2 * decay, dense.weight.grad, atol=1e-7)
    assert not torch.allclose(decay, dense.weight.grad, atol=1e-7)


class Backward:
    """A trainer's backward that keeps the loss the task hands it."""

    def backward(self, loss, optimizer):
        self.loss = loss


def test_a_classification_step_adds_the_l2_term_of_model_task_l2(make_cfg):
    task = build_task(make_cfg("model=mlp", "model.task.l2=0.01"))
    task.trainer = Backward()
    task.optimizer = None
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    torch.manual_seed(0)
    logs = task.training_step((x, y), 0)
    kernels = [m.weight for m in task.net.modules() if isinstance(m, nn.Linear)]
    assert len(kernels) == 3  # two hidden layers and the head
    extra = 0.01 * sum(k.square().sum() for k in kernels)
    assert torch.allclose(task.trainer.loss, logs["train/loss"] + extra)


@pytest.mark.parametrize("value", ["-0.001", "nan"])
def test_a_negative_or_nan_l2_names_its_key(value, make_cfg):
    with pytest.raises(DlpyError, match="model.task.l2"):
        build_task(make_cfg("model=mlp", f"model.task.l2={value}"))
