"""The convolutions and normalisation layers a conv stack can use (`model.conv`, `model.norm`).

A separable convolution is Keras's SeparableConv2D (Chollet, Deep Learning with Python 7.3.1): a
depthwise conv, one filter per input channel (groups = in_channels), then a 1x1 pointwise conv
that mixes the channels. From 3 to 4 channels with 3x3 kernels it has 27 + 12 weights where the
standard conv has 108 (the TensorFlow 2 course, 8.6). A depthwise conv alone is Keras's
DepthwiseConv2D: each output channel sees one input channel.
"""

from torch import nn

from dlpy.errors import DlpyError, check_choice, check_number

CONVS = ("standard", "separable", "depthwise")
NORMS = ("batch", "layer", "instance", "group", "none")
# Wu & He (Group Normalization, 2018) use 32 groups; fewer where the channels are fewer.
MAX_GROUPS = 32


def check_conv_options(conv: str, norm: str, dilation: int, norm_groups: int) -> None:
    """One line naming the key for a conv variant, norm or size dlpy does not have."""
    check_choice("model.conv", conv, CONVS)
    check_choice("model.norm", norm, NORMS)
    check_number("model.dilation", dilation, at_least=1, integer=True)
    check_number("model.norm_groups", norm_groups, integer=True)


def make_conv(
    kind: str,
    cin: int,
    cout: int,
    kernel_size: int,
    padding: int,
    dilation: int,
    bias: bool,
) -> nn.Module:
    """A standard, separable (depthwise, then pointwise 1x1) or depthwise conv from cin to cout."""
    if kind == "separable":
        # Keras's SeparableConv2D dilates the depthwise part and gives the pointwise one the bias.
        depthwise = nn.Conv2d(
            cin, cin, kernel_size, padding=padding, dilation=dilation, groups=cin, bias=False
        )
        return nn.Sequential(depthwise, nn.Conv2d(cin, cout, 1, bias=bias))
    groups = cin if kind == "depthwise" else 1
    if cout % groups:
        raise DlpyError(
            f"model.conv=depthwise: {cout} output channels are not a multiple of the "
            f"{cin} input channels (model.layers)"
        )
    return nn.Conv2d(
        cin, cout, kernel_size, padding=padding, dilation=dilation, groups=groups, bias=bias
    )


def make_norm(kind: str, channels: int, groups: int) -> nn.Module | None:
    """The norm layer after a conv of `channels`; None for norm=none.

    Layer norm over (C, H, W) is group norm with one group, and instance norm with one group per
    channel (Wu & He, 2018, figure 2); torch's InstanceNorm2d says so by name.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(group_count(channels, groups), channels)
    return None


def group_count(channels: int, groups: int) -> int:
    """`model.norm_groups`, which must divide the channels; 0: the most up to 32 that do."""
    if groups == 0:
        return max(g for g in range(1, min(MAX_GROUPS, channels) + 1) if channels % g == 0)
    if channels % groups:
        raise DlpyError(
            f"model.norm_groups={groups} does not divide a conv's {channels} channels "
            "(model.layers); 0 picks a divisor per conv"
        )
    return groups
