"""Text: IMDB movie reviews (Maas et al., 2011) for sentiment, and any text file for character models.

Reviews come from the aclImdb folder tree (train|test / pos|neg / <id>_<stars>.txt), tokenised
and indexed against the N most frequent training words. Two forms, as in Chollet's chapters:
`multi_hot` rows (which words occur) for a dense network, and `index` sequences (the first
max_length words, padded with 0) for an embedding.
"""

import re
from collections import Counter
from pathlib import Path

import torch

from dlpy.data.files import reading
from dlpy.data.tensors import TensorData, find_or_download
from dlpy.errors import DlpyError
from dlpy.registry import DATASETS

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
NIETZSCHE_URL = "https://s3.amazonaws.com/text-datasets/nietzsche.txt"
PAD, UNKNOWN = 0, 1  # token indices: padding, a word outside the vocabulary
TOKEN = re.compile(r"[a-z0-9']+")


def tokenize(text):
    """Lower case, HTML line breaks dropped, runs of letters, digits and apostrophes."""
    return TOKEN.findall(text.lower().replace("<br />", " "))


def read_reviews(folder):
    """(texts, labels) of one aclImdb split: neg is 0, pos is 1."""
    texts, labels = [], []
    for label, sentiment in enumerate(("neg", "pos")):
        files = sorted((folder / sentiment).glob("*.txt"))
        if not files:
            raise DlpyError(f"dataset.root: {folder / sentiment} holds no reviews (*.txt)")
        for path in files:
            with reading(path):
                texts.append(path.read_text(encoding="utf-8"))
        labels += [label] * len(files)
    return texts, torch.tensor(labels)


def build_vocabulary(token_lists, size):
    """word -> index for the size - 2 most frequent words (ties by spelling); 0 and 1 are padding and unknown."""
    counts = Counter(word for tokens in token_lists for word in tokens)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: size - 2]
    return {word: i + 2 for i, (word, _) in enumerate(ranked)}


def pad(sequences, length=None):
    """Lists of indices -> int32 (N, length), truncated to their first `length` and padded with 0 after."""
    length = length or max(map(len, sequences), default=1)
    out = torch.full((len(sequences), max(length, 1)), PAD, dtype=torch.int32)
    for i, seq in enumerate(sequences):
        seq = seq[:length]
        out[i, : len(seq)] = torch.tensor(seq, dtype=torch.int32)
    return out


def load_glove(path, vocabulary, size):
    """(size, dim) vectors of a GloVe text file ("word v1 v2 ..." per line); words it lacks stay 0 (Chollet 6.1)."""
    path, vectors = Path(path).expanduser(), None
    if not path.is_file():
        raise DlpyError(f"dataset.glove: {path} is not a file")
    with reading(path), open(path, encoding="utf-8") as lines:
        for line in lines:
            word, *values = line.rstrip().split(" ")
            if vectors is None:
                vectors = torch.zeros(size, len(values))
            if word in vocabulary:
                vectors[vocabulary[word]] = torch.tensor([float(v) for v in values])
    if vectors is None:
        raise DlpyError(f"dataset.glove: {path} is empty")
    return vectors


class ReviewData(TensorData):
    def __init__(self, ids, labels, splits, mode, vocab_size, batch_size, eval_batch_size):
        super().__init__({k: len(v) for k, v in splits.items()}, batch_size, eval_batch_size)
        self.ids, self.labels, self.mode, self.vocab_size = ids, labels, mode, vocab_size
        self.train_idx, self.val_idx, self.test_idx = splits["train"], splits["val"], splits["test"]
        self.vectors = (
            None  # pretrained (vocab_size, dim) word vectors, when dataset.glove names a file
        )

    def batch(self, split, idx):
        rows = getattr(self, f"{split}_idx")[idx]
        ids = self.ids[rows].long()
        if (
            self.mode == "multi_hot"
        ):  # which vocabulary words occur in the review (padding excluded)
            x = torch.zeros(len(ids), self.vocab_size, device=ids.device).scatter_(1, ids, 1.0)
            x[:, PAD] = 0
            return x, self.labels[rows]
        return ids, self.labels[rows]


@DATASETS.register("imdb")
def imdb(
    *,
    root,
    download=True,
    task="classification",
    num_classes=2,
    vocab_size=10000,
    num_features=None,
    mode="multi_hot",
    max_length=500,
    val_size=5000,
    split_seed=0,
    batch_size=512,
    eval_batch_size=1000,
    glove=None,
):
    """IMDB reviews (Maas et al., 2011): 25k+25k, positive or negative; multi-hot rows or padded word indices."""
    check_task(task, "classification")
    if mode not in ("multi_hot", "index"):
        raise DlpyError(f"dataset.mode: unknown {mode!r}; known: multi_hot, index")
    if num_features not in (None, vocab_size):
        raise DlpyError(
            f"dataset.num_features is {num_features}, but the vocabulary (dataset.vocab_size) is {vocab_size}"
        )
    if num_classes != 2:
        raise DlpyError(
            f"dataset.num_classes is {num_classes}, but IMDB reviews are positive or negative (2)"
        )
    folder = find_or_download("IMDB", root, "aclImdb", IMDB_URL, download, unpack="tar")
    (train_texts, train_y), (test_texts, test_y) = (
        read_reviews(folder / split) for split in ("train", "test")
    )
    train_tokens = [tokenize(t) for t in train_texts]
    vocabulary = build_vocabulary(train_tokens, vocab_size)
    sequences = [
        [vocabulary.get(w, UNKNOWN) for w in tokens]
        for tokens in train_tokens + [tokenize(t) for t in test_texts]
    ]
    if mode == "multi_hot":  # the words of the whole review, each once
        ids = pad([sorted(set(seq)) for seq in sequences])
    else:
        ids = pad(sequences, max_length)
    n = len(train_texts)
    if not 0 <= val_size < n:
        raise DlpyError(f"dataset.val_size must be in [0, {n}), got {val_size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    splits = {
        "train": perm[val_size:],
        "val": perm[:val_size],
        "test": torch.arange(n, len(sequences)),
    }
    data = ReviewData(
        ids, torch.cat([train_y, test_y]), splits, mode, vocab_size, batch_size, eval_batch_size
    )
    data.vocabulary, data.name, data.root = vocabulary, "imdb", folder
    if glove:
        data.vectors = load_glove(glove, vocabulary, vocab_size)
    return data


def check_task(task, want):
    if task != want:
        raise DlpyError(f"dataset.task is {task!r}, but this dataset's targets call for {want!r}")


class CharData(TensorData):
    """Bytes of a text; a sample is `maxlen` bytes and the next one is its target (Chollet 8.1)."""

    def __init__(self, codes, splits, maxlen, batch_size, eval_batch_size):
        super().__init__({k: len(v) for k, v in splits.items()}, batch_size, eval_batch_size)
        self.codes, self.maxlen = codes, maxlen
        self.train_starts, self.val_starts, self.test_starts = (
            splits["train"],
            splits["val"],
            splits["test"],
        )

    def batch(self, split, idx):
        starts = getattr(self, f"{split}_starts")[idx]
        x = self.codes[starts[:, None] + torch.arange(self.maxlen, device=starts.device)].long()
        return x, self.codes[starts + self.maxlen].long()

    def prompt(self):
        """The first maxlen bytes of the validation text (else the training text): where samples start."""
        start = self.val_starts[0] if len(self.val_starts) else self.train_starts[0]
        return self.codes[start : start + self.maxlen].long()

    @staticmethod
    def decode(codes):
        return bytes(codes.tolist()).decode("utf-8", errors="replace")


@DATASETS.register("text")
def text(
    *,
    root,
    path=None,
    download=True,
    task="classification",
    vocab_size=256,
    num_classes=256,
    lowercase=True,
    maxlen=60,
    step=3,
    val_size=10000,
    test_size=10000,
    batch_size=128,
    eval_batch_size=1000,
):
    """Any text file as bytes for a character language model (default: Nietzsche, as in Chollet 8.1)."""
    check_task(task, "classification")
    if vocab_size != 256 or num_classes != 256:
        raise DlpyError(
            "dataset.vocab_size and dataset.num_classes must be 256: text is read as bytes"
        )
    if path:
        path = Path(path).expanduser()
        if not path.is_file():
            raise DlpyError(f"dataset.path: {path} is not a file")
    else:
        path = find_or_download("Nietzsche text", root, "nietzsche.txt", NIETZSCHE_URL, download)
    content = path.read_text(encoding="utf-8", errors="replace")
    codes = torch.frombuffer(
        bytearray((content.lower() if lowercase else content).encode("utf-8")), dtype=torch.uint8
    )
    n_train = len(codes) - val_size - test_size
    if n_train <= maxlen or min(val_size, test_size) < 0:
        raise DlpyError(
            f"dataset.val_size + dataset.test_size ({val_size + test_size}) leave no training text "
            f"of the {len(codes)} bytes in {path}"
        )
    bounds = {
        "train": (0, n_train),
        "val": (n_train, n_train + val_size),
        "test": (n_train + val_size, len(codes)),
    }
    splits = {k: torch.arange(a, max(a, b - maxlen), step) for k, (a, b) in bounds.items()}
    data = CharData(codes.clone(), splits, maxlen, batch_size, eval_batch_size)
    data.name, data.root = path.stem, path.parent
    return data
