"""model=pretrained: torchvision's ImageNet weights from the hub cache, a dlpy run's weights, the
feature-extraction and fine-tuning phases, and the class subsets transfer experiments use.

No weights are downloaded: a file with an architecture's real parameter names and shapes (its
state dict, untrained, in half precision to halve the writing) is put in a temporary hub cache
under the name torchvision's URL ends with.
"""

import json
import logging
import re
import urllib.error
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from test_io import RunsCode

from dlpy.build import build_data, build_task
from dlpy.errors import DlpyError
from dlpy.io import load_checkpoint
from dlpy.train import train

FAST_ARCHS = ["resnet18", "mobilenet_v3_small", "efficientnet_b0"]
SLOW_ARCHS = ["resnet50", "vgg16", "convnext_tiny"]  # 100-530 MB of weights to write and load
SMALL = ["model=pretrained", "model.size=32"]  # 32x32 inputs: a CPU step in a fraction of a second
QUIET = ["~callbacks.image_files", "~logger"]


def weights_file(arch):
    from torchvision import models

    return Path(models.get_model_weights(arch).DEFAULT.url).name


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A hub cache for the module; place(arch) writes an architecture's file there once."""
    from torchvision import models

    folder = tmp_path_factory.mktemp("hub")
    written = {}

    def place(arch):
        if arch not in written:
            torch.manual_seed(0)
            state = models.get_model(arch, weights=None).state_dict()
            written[arch] = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
            (folder / "checkpoints").mkdir(exist_ok=True)
            torch.save(written[arch], folder / "checkpoints" / weights_file(arch))
        return written[arch]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.hub, "_hub_dir", str(folder))
        yield place


def one_step(arch, hub, make_cfg):
    state = hub(arch)
    net = build_task(make_cfg(*SMALL, f"model.arch={arch}")).net
    body = net.body.state_dict()
    name = next(k for k, v in state.items() if v.is_floating_point() and v.ndim > 1)
    assert torch.equal(body[name], state[name].float())  # the file's weights are the body's
    assert net.head[-1].out_features == 10  # Fashion-MNIST's classes, not ImageNet's 1000
    trainable = [p for p in net.parameters() if p.requires_grad]
    before = [p.clone() for p in trainable]
    x = torch.randn(4, 1, 28, 28)  # grey 28x28: repeated to 3 channels, resized to 32
    loss = F.cross_entropy(net.train()(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    torch.optim.SGD(trainable, lr=0.1).step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainable, strict=True))


@pytest.mark.parametrize("arch", FAST_ARCHS)
def test_imagenet_weights_load_from_the_hub_cache_and_a_new_head_trains(arch, hub, make_cfg):
    one_step(arch, hub, make_cfg)


@pytest.mark.slow
@pytest.mark.parametrize("arch", SLOW_ARCHS)
def test_large_imagenet_weights_load_and_a_new_head_trains(arch, hub, make_cfg):
    one_step(arch, hub, make_cfg)


def test_a_code_carrying_pickle_in_the_hub_cache_is_refused(tmp_path, monkeypatch, make_cfg):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    cached = tmp_path / "hub" / "checkpoints" / weights_file("resnet18")
    cached.parent.mkdir(parents=True)
    torch.save({"payload": RunsCode()}, cached)
    with pytest.raises(DlpyError, match="model.weights=imagenet: cannot load"):
        build_task(make_cfg(*SMALL))
    assert not (tmp_path / "pwned.txt").exists()


def test_offline_the_error_names_the_url_and_the_file_to_put_in_the_hub_cache(
    tmp_path, monkeypatch, make_cfg
):
    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    where = tmp_path / "hub" / "checkpoints" / weights_file("resnet18")
    with pytest.raises(DlpyError, match=f"download https://\\S+ elsewhere and put it at {where}"):
        build_task(make_cfg(*SMALL))


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.mode=fine_tuning", "model.mode must be one of 'feature_extraction', 'fine_tune'"),
        ("model.arch=resnet19", "model.arch: Unknown value 'resnet19'. Did you mean"),
        ("model.unfreeze=-2", "model.unfreeze must be all or a number of blocks >= 1"),
    ],
)
def test_bad_options_name_the_key(override, message, make_cfg):
    with pytest.raises(DlpyError, match=re.escape(message)):
        build_task(make_cfg(*SMALL, "model.weights=none", override))


def body_state(task_state):
    return {k: v for k, v in task_state.items() if k.startswith("net.body.")}


def test_feature_extraction_leaves_the_body_and_its_batchnorm_statistics_unchanged(
    hub, make_cfg, tmp_path, caplog
):
    """Through the body, in training mode (cache off): BN must still use its stored statistics."""
    state = hub("mobilenet_v3_small")
    cfg = make_cfg(*SMALL, *QUIET, "model.arch=mobilenet_v3_small", "model.task.cache=false")
    cfg.trainer.max_steps = 2
    with caplog.at_level(logging.INFO):
        train(cfg, tmp_path)
    after = body_state(load_checkpoint(tmp_path / "checkpoints" / "last.pt")["task"])
    assert any("running_mean" in k for k in after)
    kept = {key: value for key, value in state.items() if f"net.body.{key}" in after}
    assert len(kept) == len(state) - 2  # all but ImageNet's classifier, replaced by the head
    for key, value in kept.items():
        assert torch.equal(after[f"net.body.{key}"], value.to(after[f"net.body.{key}"].dtype)), key
    assert re.search(r"phase 1 \(the head\) from epoch 1: 10,250 trainable parameters", caplog.text)


@pytest.mark.slow
def test_the_cached_features_train_the_head_as_the_images_would(hub, make_cfg, tmp_path):
    hub("mobilenet_v3_small")
    accuracies = []
    for cache in ("true", "false"):
        arch = "model.arch=mobilenet_v3_small"
        cfg = make_cfg(*SMALL, *QUIET, arch, f"model.task.cache={cache}")
        cfg.trainer.max_steps = 3
        train(cfg, tmp_path / cache)
        accuracies.append(json.loads((tmp_path / cache / "metrics.json").read_text())["test/acc"])
    assert accuracies[0] == pytest.approx(accuracies[1], abs=0.02)


def test_fine_tune_gives_the_body_a_lower_rate_and_unfreezes_its_last_blocks(hub, make_cfg):
    hub("resnet18")
    cfg = make_cfg(*SMALL, "model.mode=fine_tune", "model.unfreeze=2", "optimizer.lr=0.01")
    task = build_task(cfg)
    task.trainer = SimpleNamespace(ddp=None, epoch=0)
    (optimizer,) = task.configure_optimizers()
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([0.01, 0.001])
    task.enter_phase(1)
    assert not any(p.requires_grad for p in task.net.body.parameters())
    task.enter_phase(2)  # the last two residual blocks of resnet18 are layer4's
    learning = {n for n, p in task.net.body.named_parameters() if p.requires_grad}
    assert learning and all(name.startswith("layer4.") for name in learning)
    assert task.net.train().body.layer3[1].bn2.training is False  # frozen: BN in eval mode
    assert task.net.body.layer4[1].bn2.training is True


@pytest.mark.slow
def test_a_run_resumed_in_phase_2_goes_on_in_phase_2(hub, make_cfg, tmp_path, caplog):
    hub("mobilenet_v3_small")
    tune = [*SMALL, *QUIET, "model.arch=mobilenet_v3_small", "model.mode=fine_tune"]
    tune += ["model.task.head_epochs=1", "trainer.limit_train_batches=2"]
    cfg = make_cfg(*tune, "trainer.max_epochs=2")
    train(cfg, tmp_path)
    caplog.clear()
    resumed = make_cfg(*tune, "trainer.max_epochs=3", f"trainer.resume={tmp_path}")
    with caplog.at_level(logging.INFO):
        train(resumed, tmp_path / "resumed")
    assert "phase 2 (the head and the body's last" in caplog.text
    assert "phase 1" not in caplog.text
    assert "from epoch 3" in caplog.text


def test_weights_of_a_dlpy_run_start_the_body(make_cfg, tmp_path):
    source = make_cfg("model=cnn", "dataset.classes=[0,1,2,3,4]", "dataset.num_classes=5")
    source.trainer.max_steps = 2
    train(source, tmp_path / "source")
    trained = load_checkpoint(tmp_path / "source" / "checkpoints" / "best.pt")["task"]
    cfg = make_cfg(
        "model=pretrained", f"model.weights={tmp_path / 'source'}", "model.mode=fine_tune"
    )
    net = build_task(cfg).net
    assert net.inputs.size == 28 and net.inputs.channels == 1
    assert torch.equal(net.body.features[0].weight, trained["net.features.0.weight"])
    assert net.head[-1].out_features == 10
    cfg.trainer.max_steps = 2
    train(cfg, tmp_path / "target")
    assert json.loads((tmp_path / "target" / "metrics.json").read_text())["status"] == "finished"


def test_a_classifier_on_a_one_class_subset_is_refused_before_a_step(make_cfg, tmp_path):
    """One class labels every image 0: loss 0 and accuracy 1.0 from the start: never trained."""
    cfg = make_cfg("dataset.classes=[3]", "dataset.num_classes=1", "dataset.val_size=10")
    with pytest.raises(DlpyError, match=re.escape("dataset.classes holds one class (Dress)")):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_class_subset_is_relabelled_and_per_class_keeps_that_many(make_cfg):
    data = build_data(
        make_cfg("dataset.classes=[5,6,7,8,9]", "dataset.num_classes=5", "dataset.per_class=4")
    )
    assert data.classes == ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    assert data.train.y.bincount().tolist() == [4] * 5
    assert set(data.test.y.tolist()) == {0, 1, 2, 3, 4}
    with pytest.raises(DlpyError, match="dataset.classes keeps 2 classes: set dataset.num_class"):
        build_data(make_cfg("dataset.classes=[1,2]"))
    with pytest.raises(DlpyError, match=re.escape("dataset.classes must be distinct class numb")):
        build_data(make_cfg("dataset.classes=[1,12]", "dataset.num_classes=2"))
