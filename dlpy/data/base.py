"""What every in-memory data set shares: the generator that shuffles and augments its batches."""

import torch


class Shuffled:
    """Holds `self.generator`: seeded per run, moved with the data, saved in checkpoints for exact resume.

    In data-parallel training every process holds all the data, draws the same order from the same
    generator, and takes its part of each batch (`shard`), so the processes together see what one
    process would.
    """

    def __init__(self):
        self.generator = torch.Generator()
        self.rank, self.world = 0, 1

    def shard(self, rank, world):
        self.rank, self.world = rank, world

    def part(self, batch):
        """This process's slice of a batch: the whole batch outside data-parallel training."""
        return batch if self.world == 1 else batch.tensor_split(self.world)[self.rank]

    def shuffled_batches(self, n, batch_size):
        """The sample indices of each training batch in a fresh random order. A last batch too small to give
        every process a sample is left out (an empty slice would make a NaN loss)."""
        order = torch.randperm(n, device=self.device, generator=self.generator)
        return [idx for idx in order.split(batch_size) if len(idx) >= self.world]

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
