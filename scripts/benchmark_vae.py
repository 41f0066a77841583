"""The dense VAE on Fashion-MNIST: dlpy's `model=vae` preset against a plain PyTorch version.

  (a) `dlpy train model=vae dataset=fashion_mnist` with its defaults, as a subprocess.
  (b) the same network (784-512-20, mean and log-variance heads) and loss (Bernoulli BCE summed
      over pixels + KL), in the style of pytorch/examples' vae/main.py: a DataLoader with
      ToTensor over the 60,000 training images, Adam 1e-3, batch 128, 10 epochs.

Prints each one's test negative ELBO (nats per image) and seconds per epoch.

    python scripts/benchmark_vae.py [--epochs 10] [--data-dir DIR]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms


class PlainVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 512), nn.Linear(512, 20), nn.Linear(512, 20)
        self.fc3, self.fc4 = nn.Linear(20, 512), nn.Linear(512, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def loss_function(recon, x, mu, logvar):
    bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def plain(root, epochs):
    torch.manual_seed(0)
    train = datasets.FashionMNIST(root, train=True, transform=transforms.ToTensor())
    test = datasets.FashionMNIST(root, train=False, transform=transforms.ToTensor())
    model = PlainVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for x, _ in DataLoader(train, batch_size=128, shuffle=True):
            optimizer.zero_grad()
            recon, mu, logvar = model(x)
            loss = loss_function(recon, x, mu, logvar)
            loss.backward()
            optimizer.step()
    seconds = (time.perf_counter() - start) / epochs
    model.eval()
    with torch.no_grad():
        total = 0.0
        for x, _ in DataLoader(test, batch_size=1000):
            recon, mu, logvar = model(x)
            total += loss_function(recon, x, mu, logvar).item()
    return total / len(test), seconds


def dlpy(data_dir, epochs):
    """The run stays in outputs/benchmark_vae/<time>/, for `dlpy sample` and TensorBoard to read."""
    run = Path("outputs") / "benchmark_vae" / time.strftime("%Y-%m-%d_%H-%M-%S")
    args = [
        sys.executable,
        "-m",
        "dlpy",
        "train",
        "model=vae",
        "dataset=fashion_mnist",
        f"hydra.run.dir={run}",
        "trainer.device=cpu",
        f"trainer.max_epochs={epochs}",
    ] + ([f"data_dir={data_dir}"] if data_dir else [])
    subprocess.run(args, check=True, capture_output=True)
    metrics = json.loads((run / "metrics.json").read_text())
    return metrics["test/neg_elbo"], metrics["time/train_s"] / metrics["epochs"], run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--data-dir",
        help="dlpy data_dir (default: dlpy's); Fashion-MNIST must be there in "
        "torchvision's layout, as any dlpy run leaves it",
    )
    args = parser.parse_args()
    root = Path(args.data_dir or "~/.cache/dlpy/data").expanduser()
    a_elbo, a_s, run = dlpy(args.data_dir, args.epochs)
    print(f"(a) dlpy model=vae        test -ELBO {a_elbo:7.2f} nats   {a_s:5.2f} s/epoch   ({run})")
    b_elbo, b_s = plain(root, args.epochs)
    print(f"(b) plain PyTorch VAE     test -ELBO {b_elbo:7.2f} nats   {b_s:5.2f} s/epoch")
    print(f"dlpy - plain: {a_elbo - b_elbo:+.2f} nats; epoch time ratio a/b = {a_s / b_s:.2f}")


if __name__ == "__main__":
    main()
