"""Sequence networks: recurrent (RNN, LSTM, GRU) and 1-D convolutional, over any kind of steps.

The input decides what a step is: an image (N, C, H, W) is read row by row (H steps of C*W
features, Atienza's RNN on MNIST); integer token indices (N, L) go through an embedding, or
one-hot when embedding_dim is 0 (Chollet's character model); a float series (N, L, F) is used
as it is (Chollet's temperature forecasts).
"""

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from dlpy.errors import DlpyError, check_choice
from dlpy.models.layers import Activation, make_activation
from dlpy.registry import MODELS
from dlpy.schema import Count, Dropout, Size

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
PADDINGS = ("same", "valid")


class SequenceInput(nn.Module):
    """Images, token indices or series -> float steps (N, L, F), and padded sequences' lengths."""

    def __init__(
        self,
        num_features: int | None = None,
        in_channels: int | None = None,
        image_size: int | None = None,
        vocab_size: int = 0,
        embedding_dim: int = 0,
        input_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.input_dropout = input_dropout
        self.embedding = None
        if vocab_size and embedding_dim:
            self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        if vocab_size:
            self.size = embedding_dim or vocab_size
        elif num_features:
            self.size = num_features
        elif in_channels and image_size:
            self.size = in_channels * image_size  # one image row per step
        else:
            raise DlpyError(
                "model.num_features: a sequence model needs the features per step "
                "(dataset.num_features), token indices (model.vocab_size) "
                "or images (dataset.image_size)"
            )

    def load_vectors(self, vectors: Tensor, trainable: bool = True) -> None:
        """Word vectors (vocab_size, embedding_dim) as the embedding, as Chollet 6.1 loads GloVe."""
        if self.embedding is None or vectors.shape != self.embedding.weight.shape:
            have = None if self.embedding is None else tuple(self.embedding.weight.shape)
            raise DlpyError(
                f"model.embedding_dim: the word vectors are {tuple(vectors.shape)}, "
                f"the embedding {have}"
            )
        self.embedding.weight.data.copy_(vectors)
        self.embedding.weight.requires_grad_(trainable)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        lengths = None
        if x.ndim == 4:  # (N, C, H, W): rows are steps
            x = x.permute(0, 2, 1, 3).flatten(2)
        elif self.vocab_size:
            if x.is_floating_point():
                raise DlpyError(
                    "model.vocab_size is set, so the model reads token indices, but the data gives "
                    f"float rows {tuple(x.shape)} (for IMDB: dataset.mode=index)"
                )
            if self.embedding is not None:
                lengths = (x != 0).sum(1).clamp_min(1)  # index 0 pads after the tokens
                x = self.embedding(x)
            else:
                x = F.one_hot(x, self.vocab_size).float()
        if self.training and self.input_dropout:
            # Keras's `dropout` of recurrent layers: one mask per sequence, the same at every step
            keep = torch.rand(x.shape[0], 1, x.shape[2], device=x.device) >= self.input_dropout
            x = x * keep / (1 - self.input_dropout)
        return x, lengths


@MODELS.register("rnn")
class RecurrentNet(nn.Module):
    """RNN, LSTM or GRU (layers, bidirectional, dropout), a linear head on the last hidden state."""

    def __init__(
        self,
        num_classes: Size,
        num_features: Size | None = None,
        in_channels: Size | None = None,
        image_size: Size | None = None,
        cell: Literal[tuple(CELLS)] = "lstm",
        hidden: Size = 128,
        layers: Size = 1,
        bidirectional: bool = False,
        dropout: Dropout = 0.0,
        input_dropout: Dropout = 0.0,
        recurrent_dropout: Dropout = 0.0,
        vocab_size: Count = 0,
        embedding_dim: Count = 0,
        embedding_trainable: bool = True,
        head_dropout: Dropout = 0.0,
    ) -> None:
        super().__init__()
        check_choice("model.cell", cell, CELLS)
        self.input = SequenceInput(
            num_features, in_channels, image_size, vocab_size, embedding_dim, input_dropout
        )
        self.embedding_trainable = embedding_trainable
        self.rnn = CELLS[cell](
            self.input.size,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,  # torch drops between layers only
        )
        self.recurrent_dropout = recurrent_dropout
        # Chollet's Dropout(0.5) between the last state and the Dense head (DLwP 2nd ed., 10.4
        # and 11.3); none by default, so the head's weights keep their names either way
        self.head_dropout = nn.Dropout(head_dropout) if head_dropout else nn.Identity()
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), num_classes)

    def load_vectors(self, vectors: Tensor) -> None:
        self.input.load_vectors(vectors, self.embedding_trainable)

    def recurrent_weights(self) -> dict[str, Tensor]:
        """The recurrent weights with Keras's recurrent_dropout, by name; {} when there is none.

        Keras's recurrent_dropout (Gal & Ghahramani, 2016) drops units of the state h(t-1) fed
        back into every step, with one mask for the whole sequence. Dropping the matching
        columns of the recurrent weights does the same with one mask per batch, and keeps the
        fused cuDNN/oneDNN kernels.
        """
        if not (self.training and self.recurrent_dropout):
            return {}
        p = self.recurrent_dropout
        weights = {}
        for name, w in self.rnn.named_parameters():
            if name.startswith("weight_hh"):
                keep = (torch.rand(1, w.shape[1], device=w.device) >= p).to(w.dtype)
                weights[name] = w * keep / (1 - p)
        return weights

    def final_state(self, x: Tensor | PackedSequence) -> Tensor:
        """The top layer's last hidden state, both directions side by side."""
        dropped = self.recurrent_weights()
        if dropped:
            weights = {**dict(self.rnn.named_parameters()), **dropped}
            _, state = functional_call(self.rnn, weights, (x,))
        else:
            _, state = self.rnn(x)
        h = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c)
        if self.rnn.bidirectional:
            return torch.cat([h[-2], h[-1]], 1)
        return h[-1]

    def forward(self, x: Tensor) -> Tensor:
        x, lengths = self.input(x)
        if lengths is not None:  # the padding is left out of the steps
            x = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        return self.head(self.head_dropout(self.final_state(x)))


def conv1d_blocks(
    width: int,
    channels: Sequence[int],
    kernel_size: int,
    pool: int,
    padding: str,
    activation: str,
) -> nn.Sequential:
    """Conv and activation per channel count, with max-pooling between them."""
    layers = []
    for i, out in enumerate(channels):
        layers.append(nn.Conv1d(width, out, kernel_size, padding=padding))
        layers.append(make_activation(activation))
        if i < len(channels) - 1:  # Chollet pools between convolutions, not after the last
            layers.append(nn.MaxPool1d(pool))
        width = out
    return nn.Sequential(*layers)


@MODELS.register("conv1d")
class Conv1dNet(nn.Module):
    """1-D convnet over steps (Chollet 6.4): conv+pool blocks, global max-pool or a GRU, a head."""

    def __init__(
        self,
        num_classes: Size,
        num_features: Size | None = None,
        in_channels: Size | None = None,
        image_size: Size | None = None,
        channels: Sequence[Size] = (32, 32, 32),
        kernel_size: Size = 5,
        pool: Size = 3,
        padding: Literal[PADDINGS] = "same",
        activation: Activation = "relu",
        gru_hidden: Count = 0,
        gru_dropout: Dropout = 0.0,
        gru_recurrent_dropout: Dropout = 0.0,
        vocab_size: Count = 0,
        embedding_dim: Count = 0,
        embedding_trainable: bool = True,
    ) -> None:
        super().__init__()
        check_choice("model.padding", padding, PADDINGS)
        self.input = SequenceInput(num_features, in_channels, image_size, vocab_size, embedding_dim)
        self.embedding_trainable = embedding_trainable
        width = channels[-1] if channels else self.input.size
        self.features = conv1d_blocks(
            self.input.size, channels, kernel_size, pool, padding, activation
        )
        self.gru = None
        self.head = None
        if gru_hidden:
            # The convolutions shorten the sequence, the GRU reads it in order (Chollet 6.4.4).
            self.gru = RecurrentNet(
                num_classes,
                num_features=width,
                cell="gru",
                hidden=gru_hidden,
                input_dropout=gru_dropout,
                recurrent_dropout=gru_recurrent_dropout,
            )
        else:
            self.head = nn.Linear(width, num_classes)

    def load_vectors(self, vectors: Tensor) -> None:
        self.input.load_vectors(vectors, self.embedding_trainable)

    def forward(self, x: Tensor) -> Tensor:
        x, _ = self.input(x)
        h = self.features(x.transpose(1, 2))  # (N, channels, steps)
        if self.gru is not None:
            return self.gru(h.transpose(1, 2))
        return self.head(h.amax(2))  # global max-pooling over the steps
