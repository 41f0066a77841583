"""Text: IMDB movie reviews (Maas et al., 2011) for sentiment, any text file for character models.

Reviews come from the aclImdb folder tree (train|test / pos|neg / <id>_<stars>.txt), tokenised
and indexed against the N most frequent training words. Two forms, as in Chollet's chapters
(1st ed. 3.4 and 6.1): `multi_hot` rows (which words occur) for a dense network, and `index`
sequences (the first max_length words, padded with 0) for an embedding.
"""

import re
from collections import Counter
from pathlib import Path
from typing import Annotated, Literal

import torch

from dlpy.data import checks
from dlpy.data.base import Batch, Shapes
from dlpy.data.files import reading
from dlpy.data.sources import find_or_download
from dlpy.data.tensors import TensorData, check_task
from dlpy.errors import DlpyError, check_choice
from dlpy.registry import DATASETS
from dlpy.schema import Count, Range, Size

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
NIETZSCHE_URL = "https://s3.amazonaws.com/text-datasets/nietzsche.txt"
PAD = 0  # the token index of padding
UNKNOWN = 1  # the token index of a word outside the vocabulary
TOKEN = re.compile(r"[a-z0-9']+")


def tokenize(text: str) -> list[str]:
    """Lower case, HTML line breaks dropped, runs of letters, digits and apostrophes."""
    return TOKEN.findall(text.lower().replace("<br />", " "))


def read_reviews(folder: Path) -> tuple[list[str], torch.Tensor]:
    """(texts, labels) of one aclImdb split: neg is 0, pos is 1."""
    texts = []
    labels = []
    for label, sentiment in enumerate(("neg", "pos")):
        files = sorted((folder / sentiment).glob("*.txt"))
        if not files:
            raise DlpyError(f"dataset.root: {folder / sentiment} holds no reviews (*.txt)")
        for path in files:
            with reading(path):
                texts.append(path.read_text(encoding="utf-8"))
            if not TOKEN.search(texts[-1].lower()):  # a review cut to nothing: no upstream one is
                raise DlpyError(f"{path} holds no words: an empty review file")
        labels += [label] * len(files)
    return texts, torch.tensor(labels)


def build_vocabulary(token_lists: list[list[str]], size: int) -> dict[str, int]:
    """word -> index for the size - 2 most frequent words (ties by spelling).

    Indices 0 and 1 are padding and unknown.
    """
    counts = Counter(word for tokens in token_lists for word in tokens)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: size - 2]
    return {word: i + 2 for i, (word, _) in enumerate(ranked)}


def pad(sequences: list[list[int]], length: int | None = None) -> torch.Tensor:
    """Lists of indices -> int32 (N, length): each cut to its first `length`, then padded with 0;
    no length: the longest's."""
    length = max(map(len, sequences), default=1) if length is None else length
    out = torch.full((len(sequences), max(length, 1)), PAD, dtype=torch.int32)
    for i, seq in enumerate(sequences):
        seq = seq[:length]
        out[i, : len(seq)] = torch.tensor(seq, dtype=torch.int32)
    return out


def encode(
    token_lists: list[list[str]], vocabulary: dict[str, int], mode: str, max_length: int
) -> torch.Tensor:
    """Reviews as padded rows of word indices.

    multi_hot: the words of the whole review, each once; index: the first max_length words.
    """
    sequences = [[vocabulary.get(w, UNKNOWN) for w in tokens] for tokens in token_lists]
    if mode == "multi_hot":
        return pad([sorted(set(seq)) for seq in sequences])
    return pad(sequences, max_length)


def is_header(line: str) -> bool:
    """Whether a vectors file's first line is word2vec's "<count> <dim>": two whole numbers."""
    fields = line.split()
    return len(fields) == 2 and all(field.isdigit() for field in fields)


def load_glove(path: str | Path, vocabulary: dict[str, int], size: int) -> torch.Tensor:
    """(size, dim) vectors of a GloVe text file ("word v1 v2 ..." per line), as in Chollet 6.1,
    or of a word2vec text file, the same after a "<count> <dim>" header line (gensim's
    `save_word2vec_format`, fastText's .vec files).

    The rows of words the file lacks stay 0.
    """
    path = Path(path).expanduser()
    vectors = None
    found = {}  # vocabulary index -> the line of its vector, to name a bad one
    if not path.is_file():
        raise DlpyError(f"dataset.glove: {path} is not a file")
    with reading(path), open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            word, *values = line.rstrip().split(" ")
            if number == 1 and is_header(line):
                continue
            if vectors is None:
                vectors = torch.zeros(size, len(values))
            if len(values) != vectors.shape[1]:
                raise DlpyError(
                    f"dataset.glove: {path} line {number} has {len(values)} numbers, "
                    f"the lines before {vectors.shape[1]}"
                )
            if word in vocabulary:
                found[vocabulary[word]] = number
                vectors[vocabulary[word]] = numbers(path, number, values)
    if vectors is None:
        raise DlpyError(f"dataset.glove: {path} is empty")
    if not found:  # the embedding would start from zeros alone, and a frozen one stay there
        raise DlpyError(
            f"dataset.glove: {path} holds a vector for none of the {len(vocabulary)} words of "
            "the vocabulary (lower-cased words, as the reviews are tokenised)"
        )
    checks.finite(f"dataset.glove: {path}", "the vectors", vectors, lambda i: f"line {found[i[0]]}")
    return vectors


def numbers(path: Path, number: int, values: list[str]) -> torch.Tensor:
    """The numbers of line `number` of a vectors file; one that is none is named with its line."""
    try:
        return torch.tensor([float(v) for v in values])
    except ValueError as err:
        raise DlpyError(f"dataset.glove: {path} line {number}: {err}") from None


class ReviewData(TensorData):
    """Reviews as padded word indices; a batch is multi-hot rows or the indices themselves."""

    def __init__(
        self,
        ids: torch.Tensor,
        labels: torch.Tensor,
        splits: dict[str, torch.Tensor],
        mode: str,
        vocab_size: int,
        batch_size: int,
        eval_batch_size: int,
    ) -> None:
        super().__init__(splits, batch_size, eval_batch_size)
        self.ids = ids
        self.labels = labels
        self.mode = mode
        self.vocab_size = vocab_size
        self.vocabulary: dict[str, int] = {}  # word -> index, set by the builder
        # pretrained (vocab_size, dim) word vectors, when dataset.glove names a file
        self.vectors: torch.Tensor | None = None

    def batch(self, split: str, idx: torch.Tensor) -> Batch:
        rows = self.splits[split][idx]
        return self.inputs(self.ids.index_select(0, rows).long()), self.labels[rows]

    def shapes(self) -> Shapes:
        """Positive or negative; multi-hot rows as wide as the vocabulary, or indices into it."""
        shapes = {"num_classes": 2, "vocab_size": self.vocab_size}
        if self.mode == "index":
            return shapes | {"sequence_length": self.ids.shape[1]}
        return shapes | {"num_features": self.vocab_size}

    def inputs(self, ids: torch.Tensor) -> torch.Tensor:
        """Padded word indices as the network's input: multi-hot rows, or the indices."""
        if self.mode == "index":
            return ids
        # which vocabulary words occur in the review (padding excluded)
        x = torch.zeros(len(ids), self.vocab_size, device=ids.device).scatter_(1, ids, 1.0)
        x[:, PAD] = 0
        return x

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """New reviews as the network's input, tokenised and indexed as the training reviews."""
        tokens = [tokenize(text) for text in texts]
        ids = encode(tokens, self.vocabulary, self.mode, self.ids.shape[1])
        return self.inputs(ids.long().to(self.ids.device))


def check_imdb(mode: str, num_features: int | None, vocab_size: int, num_classes: int) -> None:
    """The options must agree with the reviews: a vocabulary-wide input, two classes."""
    check_choice("dataset.mode", mode, ("multi_hot", "index"))
    if num_features not in (None, vocab_size):
        raise DlpyError(
            f"dataset.num_features is {num_features}, "
            f"but the vocabulary (dataset.vocab_size) is {vocab_size}"
        )
    if num_classes != 2:
        raise DlpyError(
            f"dataset.num_classes is {num_classes}, but IMDB reviews are positive or negative (2)"
        )


@DATASETS.register("imdb")
def imdb(
    *,
    root: str | Path,
    download: bool = True,
    task: Literal["classification"] = "classification",
    num_classes: Size = 2,
    vocab_size: Annotated[int, Range(ge=4)] = 10000,
    num_features: Size | None = None,
    mode: Literal["multi_hot", "index"] = "multi_hot",
    max_length: Size = 500,
    val_size: Count = 5000,
    split_seed: Count = 0,
    batch_size: Size = 512,
    eval_batch_size: Size = 1000,
    glove: str | None = None,
) -> ReviewData:
    """IMDB reviews (Maas et al., 2011): 25k+25k, positive or negative; multi-hot or word ids."""
    check_task(task, "classification")
    check_imdb(mode, num_features, vocab_size, num_classes)
    folder = find_or_download("IMDB", root, "aclImdb", IMDB_URL, download, unpack="tar")
    train_texts, train_y = read_reviews(folder / "train")
    test_texts, test_y = read_reviews(folder / "test")
    train_tokens = [tokenize(t) for t in train_texts]
    vocabulary = build_vocabulary(train_tokens, vocab_size)
    ids = encode(train_tokens + [tokenize(t) for t in test_texts], vocabulary, mode, max_length)
    n = len(train_texts)
    if not (ids[:n] > UNKNOWN).any():  # every word "unknown": the reviews would look all alike
        raise DlpyError(
            f"dataset.vocab_size={vocab_size}: no word of the training reviews in "
            f"{folder / 'train'} is in the vocabulary"
        )
    if not 0 <= val_size < n:
        raise DlpyError(f"dataset.val_size must be in [0, {n}), got {val_size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    splits = {"train": perm[val_size:], "val": perm[:val_size], "test": torch.arange(n, len(ids))}
    labels = torch.cat([train_y, test_y])
    data = ReviewData(ids, labels, splits, mode, vocab_size, batch_size, eval_batch_size)
    data.vocabulary = vocabulary
    data.name = "imdb"
    data.root = folder
    if glove:
        data.vectors = load_glove(glove, vocabulary, vocab_size)
    return data


class CharData(TensorData):
    """Bytes of a text; a sample is `maxlen` bytes and the next one is its target (Chollet 8.1).

    A split is the start positions of its samples.
    """

    def __init__(
        self,
        codes: torch.Tensor,
        splits: dict[str, torch.Tensor],
        maxlen: int,
        batch_size: int,
        eval_batch_size: int,
    ) -> None:
        super().__init__(splits, batch_size, eval_batch_size)
        self.codes = codes
        self.maxlen = maxlen

    def batch(self, split: str, idx: torch.Tensor) -> Batch:
        starts = self.splits[split][idx]
        x = self.codes[starts[:, None] + torch.arange(self.maxlen, device=starts.device)].long()
        return x, self.codes[starts + self.maxlen].long()

    def shapes(self) -> Shapes:
        """maxlen bytes in, the next byte out: both of 256 values."""
        return {"vocab_size": 256, "num_classes": 256, "sequence_length": self.maxlen}

    def prompt(self) -> torch.Tensor:
        """The first maxlen bytes of the validation text (else the training text): samples start.

        Generated text then continues text the model did not train on.
        """
        starts = self.splits["val"] if len(self.splits["val"]) else self.splits["train"]
        return self.codes[starts[0] : starts[0] + self.maxlen].long()

    @staticmethod
    def decode(codes: torch.Tensor) -> str:
        """Bytes back to text; a character cut at the window's edge reads as U+FFFD."""
        return bytes(codes.tolist()).decode("utf-8", errors="replace")


def text_file(root: str | Path, path: str | None, download: bool) -> Path:
    """dataset.path if set, else Nietzsche's text in dataset.root (downloaded if missing)."""
    if not path:
        return find_or_download("Nietzsche text", root, "nietzsche.txt", NIETZSCHE_URL, download)
    path = Path(path).expanduser()
    if not path.is_file():
        raise DlpyError(f"dataset.path: {path} is not a file")
    return path


@DATASETS.register("text")
def text(
    *,
    root: str | Path,
    path: str | None = None,
    download: bool = True,
    task: Literal["classification"] = "classification",
    vocab_size: Size = 256,
    num_classes: Size = 256,
    lowercase: bool = True,
    maxlen: Size = 60,
    step: Size = 3,
    val_size: Count = 10000,
    test_size: Count = 10000,
    batch_size: Size = 128,
    eval_batch_size: Size = 1000,
) -> CharData:
    """Any text file as bytes for a character language model (default: Nietzsche, Chollet 8.1)."""
    check_task(task, "classification")
    if vocab_size != 256 or num_classes != 256:
        raise DlpyError(
            "dataset.vocab_size and dataset.num_classes must be 256: text is read as bytes"
        )
    path = text_file(root, path, download)
    content = path.read_text(encoding="utf-8", errors="replace")
    if not content:
        raise DlpyError(f"{path} is empty: there is no text to learn from")
    content = content.lower() if lowercase else content
    codes = torch.frombuffer(bytearray(content.encode("utf-8")), dtype=torch.uint8)
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
    # a sample every `step` bytes, its maxlen bytes and its target inside the split
    splits = {k: torch.arange(a, max(a, b - maxlen), step) for k, (a, b) in bounds.items()}
    # no validation when asked for none (dataset.val_size=0); a split too short for a sample is
    # an error, and so is no test split: the run would end without its test numbers
    sizes = {k: len(v) for k, v in splits.items() if k != "val" or val_size}
    how = f": a sample takes dataset.maxlen + 1 = {maxlen + 1} bytes of its split"
    checks.not_empty(path, sizes, how + f" (dataset.val_size={val_size}, test_size={test_size})")
    data = CharData(codes.clone(), splits, maxlen, batch_size, eval_batch_size)
    data.name = path.stem
    data.root = path.parent
    return data
