import torch
import torch.nn.functional as F

from dlpy.registry import TASKS
from dlpy.tasks.classification import Classification


def reweight(logits, temperature):
    """Chollet 8.1's sampling distribution: log-probabilities divided by the temperature, then softmax."""
    return F.softmax(F.log_softmax(logits.float(), -1) / temperature, -1)


@TASKS.register("char_lm")
class CharLanguageModel(Classification):
    """Next-character prediction (cross-entropy); examples are texts sampled at several temperatures."""

    def __init__(
        self, net, optimizer, temperatures=(0.2, 0.5, 1.0, 1.2), label_smoothing=0.0, l1=0.0
    ):
        super().__init__(net, optimizer, label_smoothing, l1)
        self.temperatures = list(temperatures)

    @torch.no_grad()
    def generate(self, prompt, length, temperatures, generator=None):
        """One text per temperature, all in one batch: each step reads the last len(prompt) codes (as the book)."""
        window = prompt.expand(len(temperatures), -1).clone()
        temps = torch.tensor(temperatures, device=prompt.device).view(-1, 1)
        out = []
        for _ in range(length):
            probs = reweight(self.net(window), temps.clamp_min(1e-6))
            nxt = torch.multinomial(probs, 1, generator=generator)
            out.append(nxt)
            window = torch.cat([window[:, 1:], nxt], 1)
        return torch.cat(out, 1) if out else window[:, :0]

    def examples(self, data, n=400, temperatures=None, seed=0):
        """{"text/temperature_<t>": the prompt and n sampled characters} for each temperature."""
        temperatures = temperatures or self.temperatures
        prompt = data.prompt()
        generator = torch.Generator(prompt.device).manual_seed(seed)
        codes = self.generate(prompt, n, temperatures, generator)
        head = data.decode(prompt.cpu())
        return {
            f"text/temperature_{t:g}": head + data.decode(row.cpu())
            for t, row in zip(temperatures, codes, strict=False)
        }
