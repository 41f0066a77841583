"""The classic architectures against their papers: layer counts, module widths, parameter counts.

Parameter counts need no forward pass, and ImageNet-size nets are built on the meta device (shapes,
no memory), so a 138M-parameter VGG-16 is counted in milliseconds. torchvision's own classes are
the oracle where they are the same network.
"""

import pytest
import torch
import torchvision
from torch import nn

from dlpy import catalog  # noqa: F401  (registers the builders)
from dlpy.build import build_task
from dlpy.errors import DlpyError
from dlpy.models.classic import Inception
from dlpy.models.densenet import DenseLayer
from dlpy.models.resnet import BasicBlock, Bottleneck
from dlpy.registry import MODELS

IMAGENET = {"in_channels": 3, "image_size": 224, "num_classes": 1000}
CIFAR = {"in_channels": 3, "image_size": 32, "num_classes": 10}


def meta(name, **options):
    """Builder `name`'s network on the meta device: its modules and shapes, no weights."""
    with torch.device("meta"):
        return MODELS.build(name, key="model", **options)


def count(name, **options):
    return n_params(meta(name, **options))


def n_params(net):
    return sum(p.numel() for p in net.parameters())


def weighted_main_path(net):
    """Convs and linear layers, shortcut projections left out: what a paper's depth counts."""
    shortcuts = {id(m) for name, m in net.named_modules() if "shortcut" in name}
    return [
        m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and id(m) not in shortcuts
    ]


# -- DenseNet-BC (Huang et al., 2017) --------------------------------------------------------------


# The paper's table 2: DenseNet-BC of 0.8M (L=100, k=12) and 15.3M (L=250, k=24) parameters.
@pytest.mark.parametrize(("depth", "growth", "millions"), [(100, 12, 0.8), (250, 24, 15.3)])
def test_densenet_bc_parameter_count_matches_the_paper(depth, growth, millions):
    assert round(count("densenet_bc", **CIFAR, depth=depth, growth=growth) / 1e6, 1) == millions


@pytest.mark.parametrize("depth", [40, 100])
def test_densenet_bc_depth_counts_its_weighted_layers(depth):
    net = meta("densenet_bc", **CIFAR, depth=depth)
    layers = [m for m in net.modules() if isinstance(m, DenseLayer)]
    assert len(layers) == 3 * (depth - 4) // 6
    # stem conv, 2 convs per bottleneck layer, 2 transitions, the fc
    assert len(weighted_main_path(net)) == depth


def test_densenet_bc_transitions_halve_the_channels_and_the_map():
    torch.manual_seed(0)
    net = MODELS.build("densenet_bc", key="model", **CIFAR, depth=40)
    # 24 stem maps + 6 layers x 12 = 96 -> 48 at the first transition, 48 + 72 = 120 -> 60
    transitions = [m for m in net.features if isinstance(m, nn.Sequential)]
    assert [t[2].out_channels for t in transitions] == [48, 60]
    shapes = []
    hooks = [t.register_forward_hook(lambda m, i, o: shapes.append(o.shape)) for t in transitions]
    with torch.no_grad():
        out = net.eval()(torch.randn(2, 3, 32, 32))
    assert [tuple(s[1:]) for s in shapes] == [(48, 16, 16), (60, 8, 8)]
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    for hook in hooks:
        hook.remove()


def test_densenet_bc_depth_must_be_6n_plus_4(make_cfg):
    with pytest.raises(DlpyError) as err:
        build_task(make_cfg("model=densenet_bc", "model.depth=41"))
    message = str(err.value)
    assert "model.depth" in message and "6n+4" in message and "41" in message
    assert "\n" not in message


# -- ResNet-18/34/50 (He et al., 2016) -------------------------------------------------------------


# torchvision's documented counts, 1000 classes: 11.7M, 21.8M, 25.6M; its classes are the oracle.
@pytest.mark.parametrize(("depth", "millions"), [(18, 11.7), (34, 21.8), (50, 25.6)])
def test_imagenet_resnet_has_torchvisions_parameters(depth, millions):
    ours = count("imagenet_resnet", **IMAGENET, depth=depth, stem="imagenet")
    with torch.device("meta"):
        theirs = n_params(getattr(torchvision.models, f"resnet{depth}")())
    assert ours == theirs and round(ours / 1e6, 1) == millions


@pytest.mark.parametrize(("depth", "block", "blocks"), [(34, BasicBlock, 16), (50, Bottleneck, 16)])
def test_imagenet_resnet_depth_follows_table_1(depth, block, blocks):
    net = meta("imagenet_resnet", **CIFAR, depth=depth)
    assert sum(isinstance(m, block) for m in net.modules()) == blocks
    assert len(weighted_main_path(net)) == depth  # stem, 2 or 3 convs per block, the fc


def test_the_small_stem_keeps_a_32x32_image_4x4_in_the_last_stage():
    torch.manual_seed(0)
    net = MODELS.build("imagenet_resnet", key="model", **CIFAR, depth=50, width=4).eval()
    with torch.no_grad():
        features = net.blocks(net.stem(torch.randn(1, 3, 32, 32)))
    assert features.shape == (1, 4 * 4 * 8, 4, 4)  # bottleneck output 4 x 8w, at 32 / 8


def test_imagenet_resnet_depth_outside_table_1_is_refused():
    with pytest.raises(DlpyError, match="model.depth"):
        meta("imagenet_resnet", **CIFAR, depth=20)


# -- VGG (Simonyan & Zisserman, 2015) --------------------------------------------------------------


# Table 2 of the paper: 133, 133, 138 and 144 million parameters for A, B, D and E.
@pytest.mark.parametrize(("depth", "millions"), [(11, 133), (13, 133), (16, 138), (19, 144)])
def test_vgg_parameter_count_matches_the_paper(depth, millions):
    ours = count("vgg", **IMAGENET, depth=depth, norm="none")
    assert round(ours / 1e6) == millions
    if depth == 16:
        with torch.device("meta"):
            assert ours == n_params(torchvision.models.vgg16())


@pytest.mark.parametrize("depth", [11, 13, 16, 19])
def test_vgg_depth_counts_its_convs_and_three_dense_layers(depth):
    net = meta("vgg", **CIFAR, depth=depth)
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) == depth - 3
    assert sum(isinstance(m, nn.Linear) for m in net.modules()) == 3


@pytest.mark.parametrize(("size", "pools"), [(28, 4), (32, 5)])
def test_vgg_on_28_pixels_skips_the_fifth_pool(size, pools):
    net = meta("vgg", in_channels=1, image_size=size, num_classes=10, depth=13)
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.modules()) == pools


def test_vgg13_is_the_course_network_it_was(make_cfg):
    """The preset moved from an explicit cnn layer list to model=vgg depth 13: the same network."""
    layers = [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
    old = meta("cnn", **CIFAR, layers=layers, norm="batch", fc=(256, 128), dropout=0.5)
    with torch.device("meta"):
        new = build_task(make_cfg("model=vgg13", "dataset=cifar10")).net
    assert [tuple(p.shape) for p in old.parameters()] == [tuple(p.shape) for p in new.parameters()]


# -- AlexNet (Krizhevsky et al., 2012) -------------------------------------------------------------


def test_alexnet_with_torchvisions_widths_has_torchvisions_parameters():
    widths = (64, 192, 384, 256, 256)
    ours = count("alexnet", **IMAGENET, channels=widths, lrn=False, stem="imagenet")
    with torch.device("meta"):
        assert ours == n_params(torchvision.models.alexnet())


def test_alexnet_split_over_two_gpus_has_the_papers_60_million_parameters():
    assert abs(count("alexnet", **IMAGENET, groups=2, stem="imagenet") / 1e6 - 60) < 1


def test_alexnets_local_response_norm_is_the_papers_formula():
    """Sec. 3.3: b = a / (k + alpha * sum over 5 neighbouring maps of a^2)^beta."""
    net = MODELS.build("alexnet", key="model", **CIFAR, channels=(8, 8, 8, 8, 8), fc=(16,))
    lrn = next(m for m in net.modules() if isinstance(m, nn.LocalResponseNorm))
    a = torch.randn(1, 9, 2, 2) * 10
    squares = nn.functional.pad(a**2, (0, 0, 0, 0, 2, 2))
    window = sum(squares[:, i : i + 9] for i in range(5))
    torch.testing.assert_close(lrn(a), a / (2 + 1e-4 * window) ** 0.75)


def test_alexnet_needs_five_conv_widths():
    with pytest.raises(DlpyError, match="model.channels"):
        meta("alexnet", **CIFAR, channels=[8, 8])


# -- GoogLeNet (Szegedy et al., 2015) --------------------------------------------------------------


def test_googlenets_inception_modules_have_table_1s_output_widths():
    with torch.device("meta"):
        net = MODELS.build("googlenet", key="model", **IMAGENET)
    widths = [m.out_channels for m in net.modules() if isinstance(m, Inception)]
    assert widths == [256, 480, 512, 512, 512, 528, 832, 832, 1024]


def test_googlenet_has_about_table_1s_6_8_million_parameters():
    # Table 1's column sums to 6.8M; it rounds each layer and counts no biases (within 3%).
    assert abs(count("googlenet", **IMAGENET, batchnorm=False) / 6.8e6 - 1) < 0.03


def test_an_inception_module_concatenates_its_four_branches_at_the_same_size():
    module = Inception(8, (4, 2, 6, 1, 3, 5), batchnorm=True).eval()
    x = torch.randn(2, 8, 7, 7)
    with torch.no_grad():
        out = module(x)
        assert out.shape == (2, 4 + 6 + 3 + 5, 7, 7)
        # in table 1's order: 1x1, 3x3, 5x5, pool projection
        torch.testing.assert_close(out[:, :4], module.branch1(x))
        torch.testing.assert_close(out[:, -5:], module.branch_pool(x))
