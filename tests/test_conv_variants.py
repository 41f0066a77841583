"""The cnn builder's conv variants, dilation and norms: weight counts and norms as oracles."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlpy.build import build_task
from dlpy.errors import DlpyError
from dlpy.models.cnn import CNN
from dlpy.models.convs import make_conv


def conv_weights(net):
    """The weight count of each conv, in order; the biases are asserted absent."""
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert all(conv.bias is None for conv in convs)
    return [conv.weight.numel() for conv in convs]


def test_a_separable_3x3_conv_from_3_to_4_channels_has_27_plus_12_weights_not_108():
    # The TensorFlow 2 course, 8.6: 3*3*3*4 = 108 weights; depthwise 3*3*3 = 27, pointwise 3*4 = 12
    assert conv_weights(make_conv("standard", 3, 4, 3, padding=1, dilation=1, bias=False)) == [108]
    separable = make_conv("separable", 3, 4, 3, padding=1, dilation=1, bias=False)
    assert conv_weights(separable) == [27, 12]
    depthwise, pointwise = separable
    assert depthwise.groups == 3 and pointwise.kernel_size == (1, 1)


@pytest.mark.parametrize(("conv", "weights"), [("standard", [108]), ("separable", [27, 12])])
def test_model_conv_chooses_the_variant_in_the_config(conv, weights, make_cfg):
    cfg = make_cfg("dataset=cifar10", "model.layers=[4]", f"model.conv={conv}", "model.norm=batch")
    net = build_task(cfg).net
    assert conv_weights(net.features) == weights
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_a_depthwise_conv_gives_each_output_channel_one_input_channel():
    conv = make_conv("depthwise", 3, 6, 3, padding=1, dilation=1, bias=False)
    assert conv.groups == 3 and conv_weights(conv) == [6 * 1 * 3 * 3]
    x = torch.rand(1, 3, 8, 8)
    x2 = x.clone()
    x2[:, 0] = 0  # changing input channel 0 changes output channels 0 and 1 only
    changed = (conv(x) - conv(x2)).abs().sum((0, 2, 3)) > 0
    assert changed.tolist() == [True, True, False, False, False, False]


def test_a_depthwise_conv_to_channels_not_a_multiple_of_its_inputs_is_refused(make_cfg):
    cfg = make_cfg("model.layers=[32,M,48]", "model.conv=depthwise")
    with pytest.raises(DlpyError, match="model.conv=depthwise") as err:
        build_task(cfg)
    assert "48" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("padding", [1, 2])
def test_dilation_spreads_the_kernel_and_the_size_follows(padding, make_cfg):
    # dilation 2: a 3x3 kernel spans 5x5, so padding 2 keeps 28x28 and padding 1 loses 2 pixels
    cfg = make_cfg("model.layers=[4]", "model.dilation=2", f"model.padding={padding}")
    net = build_task(cfg).net
    assert net.features[0].dilation == (2, 2)
    side = 28 + 2 * padding - 4
    assert net.classifier[1].in_features == 4 * side * side
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize(
    ("norm", "layer"),
    [
        ("batch", nn.BatchNorm2d),
        ("layer", nn.GroupNorm),
        ("instance", nn.InstanceNorm2d),
        ("group", nn.GroupNorm),
        ("none", nn.ReLU),
    ],
)
def test_model_norm_puts_its_layer_behind_each_conv(norm, layer, make_cfg):
    net = build_task(make_cfg("model.layers=[8,M,16]", f"model.norm={norm}")).net
    assert type(net.features[1]) is layer
    assert (net.features[0].bias is None) == (norm != "none")  # a norm's shift replaces the bias


def test_layer_and_instance_norm_standardise_over_chw_and_over_hw():
    # Wu & He (2018), figure 2: layer norm over (C, H, W) per sample, instance norm per channel
    x = torch.randn(2, 8, 5, 5) * 3 + 1
    layer = CNN(8, 5, 2, layers=[8], norm="layer").features[1]
    instance = CNN(8, 5, 2, layers=[8], norm="instance").features[1]
    torch.testing.assert_close(layer(x), F.layer_norm(x, x.shape[1:]), atol=1e-5, rtol=1e-5)
    mean = x.mean((2, 3), keepdim=True)
    std = x.var((2, 3), unbiased=False, keepdim=True).add(1e-5).sqrt()
    torch.testing.assert_close(instance(x), (x - mean) / std, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("groups", "expected"), [(0, [6, 16]), (2, [2, 2])])
def test_group_norm_takes_model_norm_groups_or_a_divisor_of_each_conv(groups, expected):
    net = CNN(1, 28, 10, layers=[6, "M", 16], norm="group", norm_groups=groups)
    assert [m.num_groups for m in net.modules() if isinstance(m, nn.GroupNorm)] == expected
    assert CNN(1, 28, 10, layers=[64], norm="group").features[1].num_groups == 32  # Wu & He's 32


def test_norm_groups_that_do_not_divide_the_channels_are_refused(make_cfg):
    cfg = make_cfg("model.norm=group", "model.norm_groups=5")
    with pytest.raises(DlpyError, match="model.norm_groups=5") as err:
        build_task(cfg)
    assert "32" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("override", "key", "hint"),
    [
        ("model.conv=seperable", "model.conv", "separable"),
        ("model.norm=groups", "model.norm", "group"),
        ("model.dilation=0", "model.dilation", ">= 1"),
        ("model.norm_groups=-1", "model.norm_groups", ">= 0"),
    ],
)
def test_an_unknown_variant_or_size_fails_naming_its_key(override, key, hint, make_cfg):
    with pytest.raises(DlpyError, match=key) as err:
        build_task(make_cfg(override))
    assert hint in str(err.value) and "\n" not in str(err.value)


def test_the_old_batchnorm_key_still_means_norm_batch(make_cfg):
    old = CNN(1, 28, 10, layers=[8, "M"], batchnorm=True)
    assert type(old.features[1]) is nn.BatchNorm2d and old.features[0].bias is None
    cfg = make_cfg("model=lenet5", "+model.batchnorm=true")  # a config written before model.norm
    assert type(build_task(cfg).net.features[1]) is nn.BatchNorm2d
    with pytest.raises(DlpyError, match="model.batchnorm=true contradicts model.norm='layer'"):
        build_task(make_cfg("model.norm=layer", "+model.batchnorm=true"))


def test_the_separable_preset_trades_conv_weights_for_the_same_shape(make_cfg):
    standard = build_task(make_cfg("model=cnn")).net
    separable = build_task(make_cfg("model=separable_cnn")).net
    # 9 + 32 + 32*9 + 32*64 + 64*9 + 64*128 weights against 9*32 + 9*32*64 + 9*64*128
    assert sum(conv_weights(separable.features)) == 11145
    assert sum(conv_weights(standard.features)) == 92448
    x = torch.rand(2, 1, 28, 28)
    assert separable.eval()(x).shape == standard.eval()(x).shape == (2, 10)
