"""`dlpy visualize`: Grad-CAM finds what decides the class, filter patterns climb, the losses by
hand, every kind's files."""

import urllib.error

import pytest
import torch
import torch.nn.functional as F
from conftest import FAST
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image

from dlpy import CONF_DIR
from dlpy.cli import main
from dlpy.errors import DlpyError
from dlpy.models.cnn import CNN
from dlpy.train import train
from dlpy.visualize import Network, pretrained
from dlpy.visualize.dream import content_loss, gram, style_loss, total_variation_loss
from dlpy.visualize.features import filter_patterns
from dlpy.visualize.heatmaps import gradcam_maps

PATCH = 6


def patch_images(n, generator):
    """28x28 noise with a dim 6x6 patch in one quadrant; class 1 has a bright one in another too."""
    x = torch.randint(0, 60, (n, 1, 28, 28), generator=generator).to(torch.uint8)
    y = torch.randint(0, 2, (n,), generator=generator)
    dim = torch.randint(0, 4, (n,), generator=generator)
    bright = (dim + torch.randint(1, 4, (n,), generator=generator)) % 4
    grid = torch.arange(28)
    for quadrant, value in ((dim, 130), (bright, torch.where(y == 1, 255, 130))):
        top = (quadrant // 2) * 14 + torch.randint(0, 14 - PATCH + 1, (n,), generator=generator)
        left = (quadrant % 2) * 14 + torch.randint(0, 14 - PATCH + 1, (n,), generator=generator)
        rows = (grid >= top[:, None]) & (grid < top[:, None] + PATCH)
        cols = (grid >= left[:, None]) & (grid < left[:, None] + PATCH)
        inside = rows[:, None, :, None] & cols[:, None, None, :]
        x = torch.where(inside, torch.as_tensor(value).view(-1, 1, 1, 1).to(torch.uint8), x)
    return x, y, (top, left)


def plain_network(net, classes=None):
    return Network(
        net,
        lambda p: p.float() / 255,
        lambda x: (x * 255).round().clamp(0, 255).to(torch.uint8),
        channels=1,
        size=28,
        canvas=56,
        classes=classes,
    )


@pytest.mark.slow
def test_gradcam_peak_falls_on_the_patch_that_decides_the_class():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    net = CNN(1, 28, 2, layers=(8, "M", 16, "M"), fc=(32,))
    optimizer = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(60):
        x, y, _ = patch_images(64, generator)
        loss = F.cross_entropy(net(x.float() / 255), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    network = plain_network(net, classes=["dim patches", "a bright patch"])
    x, y, (top, left) = patch_images(200, generator)
    assert network.conv_layers() == [
        "features.1",
        "features.4",
    ]  # conv+ReLU blocks, named by their ReLU
    cam, pred = gradcam_maps(network, network.normalize(x), "features.4")
    assert (pred == y).float().mean() > 0.95
    peak = cam.flatten(1).argmax(1)
    row, col = peak // 28, peak % 28
    on_patch = ((row >= top) & (row < top + PATCH) & (col >= left) & (col < left + PATCH))[y == 1]
    # every peak on the bright patch, none on a dim one (an untrained net of this shape hits it
    # about 40% of the time)
    assert on_patch.all(), (
        f"{int((~on_patch).sum())} of {len(on_patch)} peaks miss the bright patch"
    )
    assert (
        cam.shape == (200, 28, 28)
        and cam.min() >= 0
        and torch.allclose(cam.amax((1, 2)), torch.ones(200))
    )


@pytest.mark.slow
def test_filter_patterns_raise_each_filters_activation_above_the_starting_noise():
    torch.manual_seed(0)
    network = plain_network(CNN(1, 28, 10, layers=(8, "M", 16), batchnorm=True))
    for layer in network.conv_layers():  # features.2 after conv and batch norm, features.6 deeper
        patterns, before, after = filter_patterns(network, layer, steps=10, lr=0.1)
        assert patterns.shape == (len(before), 1, 28, 28)
        assert (after > before).all(), f"{layer}: {before} -> {after}"


def test_gram_matrix_and_losses_match_hand_computed_values():
    features = torch.tensor(
        [[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [1.0, 0.0]]]
    )  # 2 channels of 2x2
    # channel 1 . channel 1 = 1+4+9+16, channel 1 . channel 2 = 2+3, channel 2 . channel 2 = 1+1
    assert torch.equal(gram(features), torch.tensor([[30.0, 5.0], [5.0, 2.0]]))
    other = torch.tensor(
        [[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 0.0]]]
    )  # gram [[2, 2], [2, 4]]
    # sum of squared differences 28^2 + 3^2 + 3^2 + 2^2 = 806, over 4 * channels^2 * size^2 with
    # 3 channels, 4 pixels
    assert style_loss(features, other, channels=3, size=4).item() == pytest.approx(
        806 / (4 * 9 * 16)
    )
    assert content_loss(features, other).item() == pytest.approx(0 + 4 + 9 + 9 + 4 + 1 + 1 + 0)
    x = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 0.0], [1.0, 5.0, 4.0]]]])
    # each of the top-left 2x2 pixels: (down difference^2 + right difference^2)^1.25
    by_hand = sum(
        v**1.25
        for v in (
            (0 - 2) ** 2 + (0 - 1) ** 2,
            (1 - 2) ** 2 + (1 - 3) ** 2,
            (2 - 1) ** 2 + (2 - 2) ** 2,
            (2 - 5) ** 2 + (2 - 0) ** 2,
        )
    )
    assert total_variation_loss(x).item() == pytest.approx(by_hand)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_dir):
    """A CNN trained for five batches on the tiny Fashion-MNIST files, and two PNGs to paint on."""
    run = tmp_path_factory.mktemp("visualize") / "run"
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", [f"data_dir={data_dir}", *FAST, "model=cnn"])
    train(cfg, run)
    (run / ".hydra").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")  # what Hydra writes when `dlpy train` runs
    pictures = torch.Generator().manual_seed(0)
    for name in ("content", "style"):
        pixels = torch.randint(0, 256, (40, 60, 3), generator=pictures, dtype=torch.uint8)
        Image.fromarray(pixels.numpy()).save(run.parent / f"{name}.png")
    return run


KIND_FILES = [
    (
        ["kind=activations"],
        [
            "activations_input",
            "activations_features.2",
            "activations_features.6",
            "activations_features.10",
        ],
    ),
    (
        ["kind=activations", "layer=features.5,features.8", "index=3"],
        ["activations_input", "activations_features.5", "activations_features.8"],
    ),
    (
        ["kind=filters", "steps=2"],
        ["filters_features.2", "filters_features.6", "filters_features.10"],
    ),
    (["kind=gradcam", "n=4"], ["gradcam_features.10"]),
    (["kind=gradcam", "n=4", "target=Bag"], ["gradcam_features.10_class8"]),
    (["kind=deepdream", "steps=2", "octaves=2", "size=40"], ["deepdream"]),
    (["kind=style_transfer", "steps=3", "size=40", "solver=adam"], ["style_transfer"]),
    (
        [
            "kind=style_transfer",
            "steps=3",
            "size=40",
            "layer=features.2",
            "content_layer=features.6",
        ],
        ["style_transfer"],
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("options, files", KIND_FILES, ids=[" ".join(o) for o, _ in KIND_FILES])
def test_each_kind_writes_its_pngs_and_the_same_images_into_tensorboard(options, files, tiny_run):
    out = tiny_run / "visualize"
    for png in out.glob("*.png"):
        png.unlink()
    pictures = [
        f"image={tiny_run.parent / 'content.png'}",
        f"style={tiny_run.parent / 'style.png'}",
    ]
    pictures = pictures[
        : 2 if "style_transfer" in options[0] else 1 if "deepdream" in options[0] else 0
    ]
    assert main(["visualize", str(tiny_run), *options, *pictures]) == 0
    assert sorted(p.stem for p in out.glob("*.png")) == sorted(files)
    events = b"".join(p.read_bytes() for p in tiny_run.glob("events.out.tfevents.*"))
    for name in files:
        assert f"visualize/{name}".encode() in events
        with Image.open(out / f"{name}.png") as image:
            assert image.mode == "RGB"
    if "deepdream" in options[0] or "style_transfer" in options[0]:
        with Image.open(out / f"{files[0]}.png") as image:
            assert image.size == (40, 27)  # the 60x40 picture, its longer side scaled to size=40


@pytest.mark.parametrize(
    "options, message",
    [
        (
            ["kind=nosuch"],
            "Known kinds: activations, augment, deepdream, filters, gradcam, style_transfer",
        ),
        (["kind=activations", "layer=features.99"], "features.0, features.1, features.2"),
        (
            ["kind=activations", "steps=3"],
            "steps= does not apply to kind=activations; its options: layer, index",
        ),
        (["kind=filters", "steps=many"], "steps must be an integer in [1, 10000], got 'many'"),
        (["kind=gradcam", "target=Hat"], "T-shirt/top, Trouser"),
        (["kind=deepdream"], "image=<image file> is required"),
        (["kind=activations", "index=200"], "index=200: the test split has images 0 .. 199"),
    ],
)
def test_bad_options_fail_naming_the_option_and_what_it_may_be(options, message, tiny_run, capsys):
    assert main(["visualize", str(tiny_run), *options]) == 2
    assert message in capsys.readouterr().err


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_pretrained_weights_offline_say_where_to_put_the_file(hub_dir, monkeypatch):
    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(
        DlpyError, match=f"put it at {hub_dir / 'checkpoints' / 'inception_v3_google-0cc3c7bd.pth'}"
    ):
        pretrained("inception_v3", torch.device("cpu"))
    with pytest.raises(DlpyError, match="Known networks: inception_v3, vgg16, vgg19"):
        pretrained("alexnet", torch.device("cpu"))


@pytest.mark.slow
def test_pretrained_inception_is_fetched_into_the_hub_cache_once_and_paints(
    hub_dir, tiny_run, monkeypatch
):
    """torchvision's own download path, the download faked: random weights of the right shapes."""
    from torchvision import models

    downloads = []

    def download(url, dst, *args, **kwargs):
        downloads.append(url)
        torch.save(
            models.get_model("inception_v3", weights=None, init_weights=False).state_dict(), dst
        )

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    out, image = tiny_run.parent / "inception", f"image={tiny_run.parent / 'content.png'}"
    assert (
        main(
            [
                "visualize",
                str(out),
                "kind=deepdream",
                "weights=inception_v3",
                image,
                "size=100",
                "octaves=1",
                "steps=1",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "visualize",
                str(out),
                "kind=style_transfer",
                "weights=inception_v3",
                image,
                f"style={tiny_run.parent / 'style.png'}",
                "size=100",
                "steps=1",
            ]
        )
        == 0
    )
    assert (
        len(downloads) == 1
        and (hub_dir / "checkpoints" / "inception_v3_google-0cc3c7bd.pth").is_file()
    )
    for name in ("deepdream", "style_transfer"):
        with Image.open(out / "visualize" / f"{name}.png") as picture:
            assert picture.size == (100, 67) and picture.mode == "RGB"


@pytest.mark.parametrize(
    ("options", "blocks"),
    [
        ({"norm": "batch"}, ["features.2", "features.6"]),
        ({"norm": "group"}, ["features.2", "features.6"]),
        ({"norm": "instance", "conv": "separable"}, ["features.2", "features.6"]),
        ({"conv": "separable"}, ["features.1", "features.4"]),
    ],
)
def test_a_conv_block_holds_its_norm_and_both_halves_of_a_separable_conv(options, blocks):
    # conv (depthwise + pointwise when separable), norm, ReLU: one layer, named by its last module
    net = CNN(1, 28, 2, layers=(8, "M", 16, "M"), fc=(32,), **options)
    assert plain_network(net).conv_layers() == blocks
