"""What every in-memory data set shares: the generator that shuffles and augments its batches."""
import torch


class Shuffled:
    """Holds `self.generator`: seeded per run, moved with the data, saved in checkpoints for exact resume."""

    def __init__(self):
        self.generator = torch.Generator()

    def move_generator(self, device):
        """A generator on `device`; a CPU generator keeps its state (another device's is seeded by `seed`)."""
        state = self.generator.get_state()
        self.generator = torch.Generator(device)
        if self.generator.device.type == "cpu":
            self.generator.set_state(state)

    def seed(self, seed):
        self.generator.manual_seed(seed)

    def state_dict(self):
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state):
        self.generator.set_state(state["generator"])
