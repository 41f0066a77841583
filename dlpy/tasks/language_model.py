"""Character-level language modelling (Chollet 8.1): next-character cross-entropy, and texts
sampled at several temperatures."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import trange

from dlpy.data.text import CharData
from dlpy.registry import TASKS
from dlpy.schema import NonNegative, Positive, Probability
from dlpy.tasks.base import Logs, OptimizerFactory
from dlpy.tasks.classification import Classification


def reweight(logits: torch.Tensor, temperature: torch.Tensor | float) -> torch.Tensor:
    """Chollet 8.1's sampling distribution: log-probabilities over the temperature, then softmax."""
    return F.softmax(F.log_softmax(logits.float(), -1) / temperature, -1)


@TASKS.register("char_lm")
class CharLanguageModel(Classification):
    """Next-character prediction (cross-entropy); examples are texts sampled at several
    temperatures."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        temperatures: Sequence[Positive] = (0.2, 0.5, 1.0, 1.2),
        label_smoothing: Probability = 0.0,
        l1: NonNegative = 0.0,
        l2: NonNegative = 0.0,
    ) -> None:
        super().__init__(net, optimizer, label_smoothing, l1, l2)
        self.temperatures = list(temperatures)
        self.show_progress = False  # `dlpy sample` shows a bar over the characters written

    @torch.no_grad()
    def generate(
        self,
        prompt: torch.Tensor,
        length: int,
        temperatures: Sequence[float],
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One text per temperature, all in one batch: each step reads the last len(prompt)
        codes, as the book's loop does."""
        window = prompt.expand(len(temperatures), -1).clone()
        temps = torch.tensor(temperatures, device=prompt.device).view(-1, 1)
        out = []
        bar = trange(
            length, desc="characters", unit="char", leave=False, disable=not self.show_progress
        )
        with bar:  # closed also when a signal stops the writing, before the line that says so
            for _ in bar:
                probs = reweight(self.net(window), temps.clamp_min(1e-6))
                nxt = torch.multinomial(probs, 1, generator=generator)
                out.append(nxt)
                window = torch.cat([window[:, 1:], nxt], 1)
        return torch.cat(out, 1) if out else window[:, :0]

    def examples(
        self,
        data: CharData,
        n: int = 400,
        temperatures: Sequence[float] | None = None,
        seed: int = 0,
    ) -> Logs:
        """{"text/temperature_<t>": the prompt in brackets, then n sampled characters} for each
        temperature: `[to be or not to ]be, that is...` shows where the model's own text starts."""
        temperatures = temperatures or self.temperatures
        prompt = data.prompt()
        generator = torch.Generator(prompt.device).manual_seed(seed)
        codes = self.generate(prompt, n, temperatures, generator)
        head = data.decode(prompt.cpu())
        texts = {}
        for t, row in zip(temperatures, codes, strict=True):
            texts[f"text/temperature_{t:g}"] = f"[{head}]{data.decode(row.cpu())}"
        return texts
