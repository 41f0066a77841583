"""Sequence and table data, sequence models and their tasks, on files in the upstream formats."""

import json
import math
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import write_aclimdb, write_boston, write_jena
from torch import nn

from dlpy.build import build_data, build_task
from dlpy.data.tabular import kfold
from dlpy.data.text import tokenize
from dlpy.data.timeseries import window_rows
from dlpy.errors import DlpyError
from dlpy.models.rnn import RecurrentNet
from dlpy.tasks.language_model import reweight
from dlpy.train import train

FEW = ["trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_eval_batches=0"]


@pytest.fixture(scope="module")
def imdb_root(tmp_path_factory):
    return write_aclimdb(tmp_path_factory.mktemp("imdb"))


@pytest.fixture(scope="module")
def jena_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("jena")
    write_jena(
        root / "jena_climate_2009_2016.csv", np.sin(np.arange(4000) / 50) * 10
    )  # 142 test windows
    return root


@pytest.fixture(scope="module")
def boston_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("boston")
    write_boston(root / "boston_housing.npz")
    return root


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    path.write_text("The quick brown fox jumps over the lazy dog. " * 200)
    return path


# -- IMDB ------------------------------------------------------------------------------------------


def imdb(make_cfg, root, *overrides):
    return build_data(
        make_cfg(
            "dataset=imdb",
            f"dataset.root={root}",
            "dataset.download=false",
            "dataset.val_size=10",
            "dataset.vocab_size=30",
            *overrides,
        )
    )


def test_imdb_reads_the_folder_tree_and_indexes_the_most_frequent_words(make_cfg, imdb_root):
    data = imdb(make_cfg, imdb_root, "dataset.mode=index", "dataset.max_length=8")
    assert (data.sizes["train"], data.sizes["val"], data.sizes["test"]) == (50, 10, 60)
    # labels come from the folder: neg 0, pos 1; the test split is the test folder, neg first
    assert data.labels[60:90].eq(0).all() and data.labels[90:].eq(1).all()
    assert (
        len(data.vocabulary) == 21 and min(data.vocabulary.values()) == 2
    )  # every training word fits in 30
    counts = Counter(
        w
        for p in sorted((imdb_root / "aclImdb" / "train").glob("*/*.txt"))
        for w in tokenize(p.read_text())
    )
    top = sorted(counts, key=lambda w: (-counts[w], w))[:8]
    small = imdb(make_cfg, imdb_root, "dataset.vocab_size=10")
    assert small.vocabulary == {w: i + 2 for i, w in enumerate(top)}
    text = (imdb_root / "aclImdb" / "test" / "pos" / "0_8.txt").read_text()
    words = tokenize(text)
    assert "br" not in words and words[-2:] == ["the", "end"]
    row = data.ids[90].tolist()  # test/pos/0_8.txt, truncated to 8 words
    assert row == [data.vocabulary.get(w, 1) for w in words[:8]]
    x, y = next(data.eval_batches("test"))
    assert x.dtype == torch.long and x.shape == (60, 8) and torch.equal(y, data.labels[60:])


def test_imdb_multi_hot_marks_the_words_of_the_whole_review(make_cfg, imdb_root):
    data = imdb(make_cfg, imdb_root)
    x, y = data.batch("test", torch.tensor([30]))  # test/pos/0_8.txt
    words = tokenize((imdb_root / "aclImdb" / "test" / "pos" / "0_8.txt").read_text())
    expected = torch.zeros(30)
    expected[[data.vocabulary.get(w, 1) for w in words]] = 1
    assert torch.equal(x[0], expected) and y.item() == 1


@pytest.mark.parametrize("header", ["", "3 3\n"])
def test_glove_and_word2vec_text_files_give_the_same_vectors(header, make_cfg, imdb_root, tmp_path):
    vectors = tmp_path / "vectors.txt"  # word2vec's text format: a "<count> <dim>" line first
    vectors.write_text(header + "great 1.0 2.0 3.0\nnotinvocab 9 9 9\nawful -1 -2 -3\n")
    data = imdb(make_cfg, imdb_root, f"dataset.glove={vectors}", "dataset.mode=index")
    assert data.vectors.shape == (30, 3)
    assert data.vectors[data.vocabulary["great"]].tolist() == [1, 2, 3]
    assert data.vectors[data.vocabulary["awful"]].tolist() == [-1, -2, -3]
    assert data.vectors.abs().sum() == 12  # the header is no word's vector


def test_a_vectors_line_of_another_width_names_the_file_and_line(make_cfg, imdb_root, tmp_path):
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("great 1.0 2.0 3.0\nawful -1 -2\n")
    with pytest.raises(DlpyError, match=r"dataset.glove: .*vectors.txt line 2 has 2 numbers"):
        imdb(make_cfg, imdb_root, f"dataset.glove={vectors}", "dataset.mode=index")


def test_imdb_pretrained_vectors_fill_the_embedding_rows_of_known_words(
    make_cfg, imdb_root, tmp_path
):
    glove = tmp_path / "glove.txt"
    glove.write_text("great 1.0 2.0 3.0\nnotinvocab 9 9 9\nawful -1 -2 -3\n")
    data = imdb(make_cfg, imdb_root, f"dataset.glove={glove}", "dataset.mode=index")
    assert data.vectors.shape == (30, 3)
    assert data.vectors[data.vocabulary["great"]].tolist() == [1, 2, 3]
    assert data.vectors[0].abs().sum() == 0
    net = build_task(
        make_cfg(
            "model=lstm",
            "dataset=imdb",
            "dataset.vocab_size=30",
            "model.embedding_dim=3",
            "model.embedding_trainable=false",
        )
    )
    net.attach(data)
    assert torch.equal(net.net.input.embedding.weight, data.vectors)
    assert not net.net.input.embedding.weight.requires_grad


def test_imdb_without_files_or_download_names_what_was_tried(make_cfg, tmp_path):
    with pytest.raises(DlpyError) as err:
        build_data(make_cfg("dataset=imdb", f"dataset.root={tmp_path}", "dataset.download=false"))
    assert str(tmp_path / "aclImdb") in str(err.value) and "dataset.download=false" in str(
        err.value
    )


def test_an_lstm_reads_padded_reviews_as_if_unpadded():
    torch.manual_seed(0)
    net = RecurrentNet(
        2, vocab_size=20, embedding_dim=4, cell="lstm", bidirectional=True, layers=2
    ).eval()
    tokens = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, 0, 0], [3, 4, 5, 6, 7]])
    assert torch.allclose(net(padded)[0], net(tokens)[0], atol=1e-6)


def test_a_multi_hot_batch_for_an_embedding_model_names_the_fix():
    net = RecurrentNet(2, vocab_size=20, embedding_dim=4)
    with pytest.raises(DlpyError, match="dataset.mode=index"):
        net(torch.rand(2, 20))


# -- Jena ------------------------------------------------------------------------------------------


def test_a_window_and_its_target_by_hand():
    rows, target = window_rows(torch.tensor([0, 5]), sequence_length=3, sampling_rate=2, delay=4)
    assert rows.tolist() == [[0, 2, 4], [5, 7, 9]] and target.tolist() == [8, 13]


def test_jena_windows_standardise_with_training_rows_and_forecast_the_temperature(
    make_cfg, tmp_path
):
    temperature = np.arange(200) * 0.1
    write_jena(tmp_path / "jena_climate_2009_2016.csv", temperature)
    data = build_data(
        make_cfg(
            "dataset=jena_climate",
            f"dataset.root={tmp_path}",
            "dataset.download=false",
            "dataset.sampling_rate=2",
            "dataset.sequence_length=3",
            "dataset.delay=4",
        )
    )
    assert (
        data.columns[1] == "T (degC)" and data.sizes["train"] == 100 - 4
    )  # windows end inside the first half
    x, y, naive = data.batch("val", torch.tensor([0]))
    # the first validation window starts at row 100: rows 100, 102, 104; target row 108, naive 104
    mean, std = temperature[:100].mean(), temperature[:100].std(ddof=1)
    assert torch.allclose(
        x[0, :, 1],
        torch.tensor((temperature[[100, 102, 104]] - mean) / std, dtype=torch.float32),
        atol=1e-4,
    )
    assert y.item() == pytest.approx(10.8, abs=1e-4) and naive.item() == pytest.approx(
        10.4, abs=1e-4
    )
    train_x = data.series[:100]
    assert torch.allclose(train_x.mean(0), torch.zeros(14), atol=1e-4)


def test_the_naive_baseline_mae_on_a_series_that_rises_steadily(make_cfg, tmp_path):
    """T rises 0.1 per row, so the temperature `delay` rows back is off by 0.1 x delay, always."""
    write_jena(tmp_path / "jena_climate_2009_2016.csv", np.arange(400) * 0.1)
    cfg = make_cfg(
        "dataset=jena_climate",
        f"dataset.root={tmp_path}",
        "dataset.download=false",
        "model=lstm",
        "dataset.sampling_rate=2",
        "dataset.sequence_length=4",
        "dataset.delay=6",
        *FEW,
    )
    assert (
        cfg.trainer.monitor == "val/mae"
        and cfg.model.task.name == "regression"
        and cfg.trainer.grad_clip > 0
    )
    train(cfg, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["val/naive_mae"] == pytest.approx(0.6, abs=1e-4)
    assert metrics["test/naive_mae"] == pytest.approx(0.6, abs=1e-4)
    assert math.isfinite(metrics["test/mae"]) and metrics["test/mae"] != metrics["test/naive_mae"]


def test_the_dense_baseline_flattens_the_jena_window(make_cfg, jena_root, tmp_path):
    """Chollet's dense baseline (DLwP ch. 10): Flatten over 120 steps x 14 features, Dense 16."""
    cfg = make_cfg(
        "experiment=jena_dense",
        f"dataset.root={jena_root}",
        "dataset.download=false",
        "trainer.max_steps=2",
        "trainer.max_epochs=1",
    )
    assert cfg.model.name == "mlp" and list(cfg.model.hidden) == [16]
    assert build_task(cfg).net[1].in_features == 120 * 14
    train(cfg, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 2
    assert math.isfinite(metrics["test/mae"]) and metrics["test/naive_mae"] > 0


@pytest.mark.slow
def test_jena_runs_end_to_end_with_the_preset_windows(make_cfg, jena_root, tmp_path):
    cfg = make_cfg(
        "model=lstm",
        "dataset=jena_climate",
        f"dataset.root={jena_root}",
        "dataset.download=false",
        "model.hidden=8",
        "model.layers=1",
        *FEW,
    )
    assert (cfg.dataset.sequence_length, cfg.dataset.sampling_rate, cfg.dataset.delay) == (
        120,
        6,
        144,
    )
    train(cfg, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"val/mae", "val/naive_mae", "test/mae", "test/naive_mae", "test/loss"} <= metrics.keys()


def test_jena_rows_not_ten_minutes_apart_are_refused(make_cfg, tmp_path):
    path = write_jena(tmp_path / "jena_climate_2009_2016.csv", np.zeros(50))
    lines = path.read_text().splitlines()
    lines[2] = "01.01.2009 01:10:00" + lines[2][19:]
    path.write_text("\n".join(lines))
    with pytest.raises(DlpyError, match="10 minutes"):
        build_data(
            make_cfg("dataset=jena_climate", f"dataset.root={tmp_path}", "dataset.download=false")
        )


# -- Boston housing --------------------------------------------------------------------------------


@pytest.mark.parametrize("n, folds", [(404, 4), (10, 3), (7, 7)])
def test_kfold_validation_covers_every_sample_exactly_once(n, folds):
    seen = torch.cat([kfold(n, folds, k)[1] for k in range(folds)])
    assert sorted(seen.tolist()) == list(range(n))
    for k in range(folds):
        train_idx, val_idx = kfold(n, folds, k)
        assert sorted(torch.cat([train_idx, val_idx]).tolist()) == list(range(n))


def test_boston_splits_like_keras_and_standardises_with_the_training_folds(make_cfg, boston_root):
    data = build_data(
        make_cfg(
            "dataset=boston_housing",
            f"dataset.root={boston_root}",
            "dataset.download=false",
            "dataset.fold=1",
        )
    )
    assert (data.sizes["train"], data.sizes["val"], data.sizes["test"]) == (303, 101, 102)
    assert torch.allclose(data.x[data.splits["train"]].mean(0), torch.zeros(13), atol=1e-5)
    assert (
        data.x[data.splits["val"]].mean(0).abs().max() > 1e-3
    )  # the validation fold is not part of the statistics
    with np.load(boston_root / "boston_housing.npz") as f:
        order = np.arange(506)
        np.random.RandomState(113).shuffle(order)
        assert np.allclose(data.y[data.splits["test"]].numpy(), f["y"][order][404:])


@pytest.mark.slow
def test_boston_runs_every_fold_and_reports_the_mean(make_cfg, boston_root, tmp_path):
    cfg = make_cfg(
        "model=mlp",
        "dataset=boston_housing",
        f"dataset.root={boston_root}",
        "dataset.download=false",
        "dataset.folds=3",
        *FEW,
    )
    assert cfg.model.task.name == "regression" and cfg.model.num_features == 13
    result = train(cfg, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    folds = [json.loads((tmp_path / f"fold{k}" / "metrics.json").read_text()) for k in range(3)]
    assert metrics["folds"] == 3 and result == metrics["val/mae"]
    assert metrics["val/mae"] == pytest.approx(sum(f["val/mae"] for f in folds) / 3)
    assert metrics["test/mae"] == pytest.approx(sum(f["test/mae"] for f in folds) / 3)
    assert [metrics[f"fold{k}/val/mae"] for k in range(3)] == [f["val/mae"] for f in folds]


# -- text and sampling -----------------------------------------------------------------------------


def test_reweighting_is_softmax_of_log_probabilities_over_temperature():
    logits = torch.tensor([[2.0, 1.0, 0.1, -1.0]])
    p = torch.softmax(logits, -1).numpy()
    for t in (0.2, 0.5, 1.0, 1.2):
        expected = np.exp(np.log(p) / t) / np.exp(np.log(p) / t).sum()  # Chollet 8.1's sample()
        assert np.allclose(reweight(logits, t).numpy(), expected, atol=1e-6)


def test_text_windows_are_bytes_and_the_next_byte_is_the_target(make_cfg, text_file):
    data = build_data(
        make_cfg(
            "dataset=text",
            f"dataset.path={text_file}",
            "dataset.val_size=500",
            "dataset.test_size=500",
            "dataset.maxlen=10",
            "dataset.step=3",
        )
    )
    codes = text_file.read_text().lower().encode()
    x, y = data.batch("train", torch.tensor([2]))
    assert bytes(x[0].tolist()) == codes[6:16] and y.item() == codes[16]
    assert data.decode(data.prompt()) == codes[len(codes) - 1000 : len(codes) - 990].decode()


def test_a_sampled_text_marks_its_prompt_off_from_what_the_model_wrote(make_cfg, text_file):
    cfg = make_cfg(
        "model=char_lstm", f"dataset.path={text_file}", "model.hidden=8", "dataset.test_size=500"
    )
    task = build_task(cfg).eval()
    data = build_data(cfg)
    with torch.inference_mode():
        texts = task.examples(data, n=12, temperatures=[1.0])
    text = texts["text/temperature_1"]
    prompt = data.decode(data.prompt())
    assert text.startswith(f"[{prompt}]") and len(text) == len(prompt) + 2 + 12


@pytest.mark.slow
def test_sampling_near_zero_temperature_is_the_argmax(make_cfg, text_file):
    cfg = make_cfg(
        "model=char_lstm", f"dataset.path={text_file}", "model.hidden=16", "dataset.test_size=500"
    )
    task = build_task(cfg).eval()
    data = build_data(cfg)
    prompt = data.prompt()
    codes = task.generate(prompt, 5, [1e-7], torch.Generator().manual_seed(0))[0]
    window = prompt.clone()
    for code in codes:  # greedy decoding by hand
        best = task.net(window[None]).argmax(1)
        assert code == best
        window = torch.cat([window[1:], best])
    hot = task.generate(prompt, 200, [5.0], torch.Generator().manual_seed(0))[0]
    assert len(set(hot.tolist())) > len(set(codes.tolist()))


@pytest.mark.slow
def test_char_lstm_trains_and_writes_a_text_per_temperature(make_cfg, text_file, tmp_path):
    train(
        make_cfg(
            "model=char_lstm",
            f"dataset.path={text_file}",
            "model.hidden=16",
            "dataset.test_size=500",
            *FEW,
        ),
        tmp_path,
    )
    texts = sorted((tmp_path / "images").glob("temperature_*_epoch001.txt"))
    assert [p.name for p in texts] == [
        f"temperature_{t}_epoch001.txt" for t in ("0.2", "0.5", "1.2", "1")
    ]
    assert all(len(p.read_text()) >= 400 for p in texts)


# -- Chollet's sequence presets: composed as the book has them, two training steps ---------------


def test_the_bidirectional_lstm_preset_trains_on_word_indices(make_cfg, imdb_root, tmp_path):
    cfg = make_cfg(
        "experiment=imdb_bilstm",
        f"dataset.root={imdb_root}",
        "dataset.download=false",
        "dataset.val_size=10",
        "dataset.vocab_size=40",
        "dataset.max_length=30",
        "model.embedding_dim=8",
        "trainer.max_steps=2",
        "trainer.max_epochs=1",
    )
    net = build_task(cfg).net
    assert net.rnn.bidirectional and net.rnn.hidden_size == 32 and net.head.in_features == 64
    assert isinstance(net.head_dropout, nn.Dropout) and net.head_dropout.p == 0.5  # the book's
    train(cfg, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 2 and math.isfinite(metrics["test/loss"])


def test_the_stacked_gru_preset_drops_recurrent_units_and_trains_on_jena(
    make_cfg, jena_root, tmp_path
):
    cfg = make_cfg(
        "experiment=jena_stacked_gru",
        f"dataset.root={jena_root}",
        "dataset.download=false",
        "dataset.sequence_length=12",
        "trainer.max_steps=2",
        "trainer.max_epochs=1",
    )
    net = build_task(cfg).net.train()
    assert (net.rnn.mode, net.rnn.num_layers, net.rnn.hidden_size) == ("GRU", 2, 32)
    assert (net.rnn.dropout, net.recurrent_dropout, net.input.input_dropout) == (0.1, 0.5, 0.1)
    assert isinstance(net.head_dropout, nn.Dropout) and net.head_dropout.p == 0.5  # the book's
    assert set(net.recurrent_weights()) == {"weight_hh_l0", "weight_hh_l1"}
    train(cfg, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 2 and {"test/mae", "test/naive_mae"} <= metrics.keys()


# -- every sequence model: one training step on its kind of data -----------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("model", ["rnn", "lstm", "gru", "conv1d", "conv1d_gru"])
def test_one_step_of_each_sequence_model_on_token_indices(model, make_cfg, imdb_root, tmp_path):
    cfg = make_cfg(
        f"model={model}",
        "dataset=imdb",
        f"dataset.root={imdb_root}",
        "dataset.download=false",
        "dataset.mode=index",
        "dataset.max_length=30",
        "dataset.val_size=10",
        "dataset.vocab_size=40",
        "trainer.max_steps=1",
        "model.recurrent_dropout=0.2" if "conv" not in model else "seed=0",
    )
    train(cfg, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 1 and math.isfinite(metrics["test/loss"])


@pytest.mark.slow
def test_the_dense_baseline_learns_the_sentiment_words(make_cfg, imdb_root, tmp_path):
    cfg = make_cfg(
        "model=mlp",
        "dataset=imdb",
        f"dataset.root={imdb_root}",
        "dataset.download=false",
        "dataset.val_size=10",
        "dataset.vocab_size=40",
        "dataset.batch_size=10",
        "trainer.max_epochs=8",
        "trainer.limit_train_batches=0",
        "trainer.limit_eval_batches=0",
    )
    assert cfg.model.num_features == 40
    assert train(cfg, tmp_path) == 1.0  # val/acc: the sentiment words give each review away
    assert json.loads((tmp_path / "metrics.json").read_text())["test/acc"] > 0.9


def test_recurrent_dropout_drops_whole_state_units_in_every_gate_and_rescales():
    torch.manual_seed(0)
    net = RecurrentNet(2, num_features=3, hidden=50, cell="gru", recurrent_dropout=0.5).train()
    dropped = net.recurrent_weights()["weight_hh_l0"]
    w = net.rnn.weight_hh_l0
    zero = (dropped == 0).all(0)  # a dropped unit of h(t-1) reaches none of the 3 gates
    assert 0 < zero.sum() < 50
    assert torch.allclose(dropped[:, ~zero], 2 * w[:, ~zero])
    assert net.eval().recurrent_weights() == {}


def test_head_dropout_drops_units_of_the_last_state_and_is_absent_by_default():
    torch.manual_seed(0)
    plain = RecurrentNet(2, num_features=3, hidden=40)
    assert not any(isinstance(m, nn.Dropout) for m in plain.modules())
    net = RecurrentNet(2, num_features=3, hidden=40, head_dropout=0.5)
    assert [m.p for m in net.modules() if isinstance(m, nn.Dropout)] == [0.5]
    assert net.state_dict().keys() == plain.state_dict().keys()  # old checkpoints still load
    seen = []
    net.head.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    x = torch.randn(4, 6, 3)
    net.train()(x)
    assert 0 < (seen[-1] == 0).float().mean() < 1  # the head sees some state units dropped
    with torch.no_grad():
        assert torch.equal(net.eval()(x), net(x))  # and none at evaluation
    assert (seen[-1] != 0).all()
