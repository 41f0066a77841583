"""`dlpy predict` on files, folders and globs, and `dlpy eval` of an ensemble of runs.

The runs are CNNs trained for five batches on the tiny Fashion-MNIST files of conftest.py, once
for the whole module; the images predicted are that data's own test images written as PNGs, so
the network's answer through `dlpy predict` can be checked against its answer on the test split.
"""

import csv
import shutil

import numpy as np
import pytest
import torch
from conftest import FAST, N_TEST, images_and_labels, write_aclimdb
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image

from dlpy import CONF_DIR
from dlpy.build import build_task
from dlpy.cli import main
from dlpy.errors import DlpyError
from dlpy.predict import check_classifier
from dlpy.runs import load_run
from dlpy.train import train


def trained(folder, data_dir, *overrides):
    """A run folder as `dlpy train` leaves it: trained weights and .hydra/config.yaml."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", [f"data_dir={data_dir}", *FAST, *overrides])
    train(cfg, folder)
    (folder / ".hydra").mkdir()
    OmegaConf.save(
        cfg, folder / ".hydra" / "config.yaml"
    )  # what Hydra writes when `dlpy train` runs
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    """Two CNNs, seeds 0 and 1, five batches each."""
    root = tmp_path_factory.mktemp("predict")
    return [trained(root / f"seed{seed}", data_dir, f"seed={seed}") for seed in (0, 1)]


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """The first five test images as PNGs in a folder, beside a broken PNG and a text file."""
    folder = tmp_path_factory.mktemp("pictures")
    x, _ = images_and_labels(N_TEST, 28, 1, 10, 1)  # conftest's t10k files
    for i in range(5):
        Image.fromarray(x[i, ..., 0]).save(folder / f"test{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is no image")
    (folder / "notes.txt").write_text("not looked at: a folder gives its image files")
    return folder


def read_csv(run):
    with open(run / "predictions" / "predictions.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_folder_is_predicted_with_the_runs_preprocessing_and_the_broken_file_named(
    runs, pictures, capsys
):
    assert main(["predict", str(runs[0]), str(pictures)]) == 0
    out, err = capsys.readouterr()
    (line,) = err.splitlines()  # the text file is no image file: a folder gives only those
    assert line.startswith(f"dlpy predict: skipped {pictures / 'broken.png'}: cannot identify")
    rows = read_csv(runs[0])
    assert [r["file"] for r in rows] == [str(pictures / f"test{i}.png") for i in range(5)]
    assert list(rows[0]) == ["file", "class_1", "p_1", "class_2", "p_2", "class_3", "p_3"]
    # the same probabilities as the network gives the test split itself
    _, _, trainer = load_run([str(runs[0])], "")
    with torch.inference_mode():
        trainer.task.eval()
        x = trainer.data.normalize(trainer.data.test.x[:5])
        expected = trainer.task.net(x).softmax(1)
    classes = trainer.data.classes
    for row, p in zip(rows, expected, strict=True):
        assert row["class_1"] == classes[int(p.argmax())]
        assert float(row["p_1"]) == pytest.approx(float(p.max()), abs=1e-5)
        assert f"{row['file']}: {row['class_1']} " in out
    with Image.open(runs[0] / "predictions" / "predictions.png") as grid:
        # one row of 28x28 images scaled 4x, 4 px apart, captions below
        assert grid.size == (5 * (112 + 4), 124)


def test_files_and_globs_give_topk_classes_and_gradcam_draws_its_grid(runs, pictures, capsys):
    args = [str(pictures / "test0.png"), str(pictures / "test[34].png"), "topk=12", "gradcam=true"]
    assert main(["predict", str(runs[0]), *args]) == 0
    out = capsys.readouterr().out
    rows = read_csv(runs[0])
    assert len(rows) == 3
    assert len([key for key in rows[0] if key.startswith("class_")]) == 10  # topk: at most all
    assert sum(float(rows[0][f"p_{k}"]) for k in range(1, 11)) == pytest.approx(1, abs=1e-4)
    assert str(runs[0] / "predictions" / "gradcam.png") in out
    with Image.open(runs[0] / "predictions" / "gradcam.png") as grid:
        assert grid.mode == "RGB"


def test_a_colour_picture_of_another_size_is_converted_to_the_datas_shape(runs, tmp_path, capsys):
    pixels = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "colour.jpg")
    assert main(["predict", str(runs[0]), str(tmp_path / "colour.jpg"), "topk=1"]) == 0
    assert f"{tmp_path / 'colour.jpg'}: " in capsys.readouterr().out


def test_nothing_readable_fails_naming_every_file(runs, pictures, tmp_path, capsys):
    args = [str(pictures / "broken.png"), str(tmp_path / "missing.png"), str(tmp_path / "*.gif")]
    assert main(["predict", str(runs[0]), *args]) == 2
    err = capsys.readouterr().err
    assert "broken.png: cannot identify image file" in err
    assert f"{tmp_path / 'missing.png'}: no such file" in err
    assert "*.gif: matches no file" in err
    assert err.strip().splitlines()[-1].startswith("dlpy: error: dlpy predict: none of the files")


@pytest.mark.parametrize(
    "options, message",
    [(["topk=0"], "topk must be an integer >= 1, got 0"), ([], "usage: dlpy predict")],
)
def test_bad_options_fail_in_one_line(options, message, runs, pictures, capsys):
    files = [] if not options else [str(pictures)]
    assert main(["predict", str(runs[0]), *files, *options]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "overrides, advice",
    [
        (["model=dcgan"], "use dlpy sample"),
        (["model=vae"], "use dlpy sample"),
        (["experiment=nietzsche_char_lstm"], "use dlpy sample"),
        (["model=reinforce", "dataset=cartpole"], "record=true"),
    ],
)
def test_generative_models_and_agents_are_sent_to_the_command_that_fits(
    overrides, advice, make_cfg, tmp_path
):
    task = build_task(make_cfg(*overrides))
    with pytest.raises(DlpyError, match=advice):
        check_classifier(task, None, tmp_path)


def test_an_imdb_classifier_reads_text_files(tmp_path, data_dir, capsys):
    root = write_aclimdb(tmp_path / "imdb")
    run = trained(
        tmp_path / "run",
        data_dir,
        "model=mlp",
        "dataset=imdb",
        f"dataset.root={root}",
        "dataset.download=false",
        "dataset.val_size=10",
        "dataset.vocab_size=40",
        "dataset.batch_size=10",
        "trainer.max_epochs=8",
        "trainer.limit_train_batches=0",
    )
    (tmp_path / "good.txt").write_text("A great film, I loved it: wonderful, superb.")
    (tmp_path / "bad.txt").write_text("An awful, boring film. I hated it; dull.")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00 not utf-8")
    assert main(["predict", str(run), str(tmp_path / "*.txt"), "topk=1"]) == 0
    out, err = capsys.readouterr()
    assert f"{tmp_path / 'good.txt'}: pos " in out
    assert f"{tmp_path / 'bad.txt'}: neg " in out
    assert f"skipped {tmp_path / 'binary.txt'}: not UTF-8 text" in err


# -- several heads ---------------------------------------------------------------------------------

FOOTWEAR = [0, 0, 0, 0, 0, 1, 0, 1, 0, 1]  # Sandal, Sneaker, Ankle boot
BINARY_GROUP = [
    "model.heads.group=1",
    "+model.task.heads.group.loss=binary_cross_entropy",
    f"model.task.heads.group.from_labels={FOOTWEAR}",
    "model.task.heads.group.names=[other,footwear]",
]


@pytest.mark.parametrize(
    ("overrides", "groups"),
    [([], ["tops", "bottoms", "footwear", "bags"]), (BINARY_GROUP, ["other", "footwear"])],
)
def test_a_multi_head_network_gives_each_heads_classes(
    overrides, groups, pictures, tmp_path, data_dir, capsys
):
    run = trained(tmp_path / "run", data_dir, "model=multi_head", *overrides)
    assert main(["predict", str(run), str(pictures), "topk=3"]) == 0
    out = capsys.readouterr().out
    rows = read_csv(run)
    k = min(3, len(groups))
    header = ["file", *[f"class/{key}_{r}" for r in (1, 2, 3) for key in ("class", "p")]]
    header += [f"group/{key}_{r}" for r in range(1, k + 1) for key in ("class", "p")]
    assert list(rows[0]) == header
    # each head's probabilities as the network gives them on the test split itself
    _, _, trainer = load_run([str(run)], "")
    with torch.inference_mode():
        trainer.task.eval()
        logits = trainer.task.net(trainer.data.normalize(trainer.data.test.x[:5]))
        group = trainer.task.log_probabilities(logits["group"], "group").exp()
    classes = trainer.data.classes
    for row, p, q in zip(rows, logits["class"].softmax(1), group, strict=True):
        assert row["class/class_1"] == classes[int(p.argmax())]
        assert float(row["class/p_1"]) == pytest.approx(float(p.max()), abs=1e-5)
        assert row["group/class_1"] == groups[int(q.argmax())]
        assert float(row["group/p_1"]) == pytest.approx(float(q.max()), abs=1e-5)
        assert f"{row['file']}: class: {row['class/class_1']} " in out
        assert f" | group: {row['group/class_1']} " in out
    with Image.open(run / "predictions" / "predictions.png") as grid:
        assert grid.size[0] >= 5 * (112 + 4)  # one row of five, as wide as the captions need
    assert main(["predict", str(run), str(pictures), "gradcam=true"]) == 2
    assert "gradcam=true applies to networks of one head" in capsys.readouterr().err


def test_a_network_whose_extra_inputs_come_from_labels_cannot_predict(make_cfg, tmp_path):
    task = build_task(make_cfg("model=multi_input"))
    with pytest.raises(DlpyError, match="labels that new files do not have"):
        check_classifier(task, None, tmp_path)


# -- ensembles -------------------------------------------------------------------------------------


def test_an_ensemble_averages_the_members_probabilities(runs, capsys):
    assert main(["eval", str(runs[0]), str(runs[1])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "test/acc", "test/loss"]
    table = {line.rsplit(None, 2)[0]: [float(v) for v in line.split()[-2:]] for line in lines[1:]}
    assert list(table) == [str(runs[0]), str(runs[1]), "ensemble of 2"]
    probabilities = []
    for run in runs:
        _, _, trainer = load_run([str(run)], "")
        metrics = trainer.test()
        assert table[str(run)][0] == pytest.approx(metrics["test/acc"], abs=1e-4)
        assert table[str(run)][1] == pytest.approx(metrics["test/loss"], abs=1e-4)
        with torch.inference_mode():
            trainer.task.eval()
            probabilities.append(
                trainer.task.net(trainer.data.normalize(trainer.data.test.x)).softmax(1)
            )
    mean = torch.stack(probabilities).mean(0)
    accuracy = float((mean.argmax(1) == trainer.data.test.y).float().mean())
    assert table["ensemble of 2"][0] == pytest.approx(accuracy, abs=1e-4)


def test_an_ensemble_of_runs_on_different_data_names_both(runs, tmp_path, capsys):
    other = tmp_path / "mnist_run"
    shutil.copytree(runs[1], other)
    cfg = OmegaConf.load(other / ".hydra" / "config.yaml")
    cfg.dataset.name = "mnist"  # the same shapes: the weights load, the classes differ
    OmegaConf.save(cfg, other / ".hydra" / "config.yaml")
    assert main(["eval", str(runs[0]), str(other)]) == 2
    err = capsys.readouterr().err
    assert f"{runs[0]} and {other} trained on different data sets (fashion_mnist and mnist)" in err
