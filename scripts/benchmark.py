"""One training epoch of the default CNN on Fashion-MNIST, three ways, on this machine.

  (a) dlpy: `dlpy train trainer.max_epochs=1` as a user runs it (a subprocess); its epoch
      time is metrics.json's time/train_s, start-up is time/startup_s.
  (b) a plain PyTorch loop over a torchvision DataLoader with ToTensor/Normalize transforms.
  (c) a minimal plain loop over tensors normalised once in memory, as most people write it
      (NCHW), and (c') the same loop in the channels_last layout dlpy's `cnn` preset uses, which
      isolates what dlpy's loop itself costs.

All train the same network (dlpy's `cnn` preset) with Adam on the same 55,000 images
(Fashion-MNIST train minus dlpy's validation split), batch 128, on the CPU.

    python scripts/benchmark.py [--workers N] [--data-dir DIR]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from dlpy import CONF_DIR
from dlpy.build import build_data, build_task

OVERRIDES = ["trainer.device=cpu", "scheduler=none"]


def config(data_dir):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", [f"data_dir={data_dir}", *OVERRIDES] if data_dir else OVERRIDES)


def fresh_net(cfg, channels_last=False):
    torch.manual_seed(0)
    net = build_task(cfg).net.to(
        memory_format=torch.channels_last if channels_last else torch.preserve_format
    )
    return net, torch.optim.Adam(net.parameters(), lr=cfg.optimizer.lr)


def dlpy_epoch(data_dir):
    with tempfile.TemporaryDirectory() as run:
        args = [
            sys.executable,
            "-m",
            "dlpy",
            "train",
            "trainer.max_epochs=1",
            f"hydra.run.dir={run}",
            *OVERRIDES,
        ]
        subprocess.run(
            args + ([f"data_dir={data_dir}"] if data_dir else []), check=True, capture_output=True
        )
        metrics = json.loads((Path(run) / "metrics.json").read_text())
    return metrics["time/train_s"], metrics["time/startup_s"]


def dataloader_epoch(cfg, data, train_idx, workers):
    mean, std = tuple(cfg.dataset.mean), tuple(cfg.dataset.std)
    dataset = datasets.FashionMNIST(
        data.root,
        train=True,
        transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)]),
    )
    loader = DataLoader(
        Subset(dataset, train_idx),
        batch_size=cfg.dataset.batch_size,
        shuffle=True,
        num_workers=workers,
    )
    net, opt = fresh_net(cfg)
    start = time.perf_counter()
    for x, y in loader:
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def tensor_epoch(cfg, data, channels_last=False):
    x, y = data.normalize(data.train.x), data.train.y
    layout = torch.channels_last if channels_last else torch.contiguous_format
    net, opt = fresh_net(cfg, channels_last)
    start = time.perf_counter()
    for idx in torch.randperm(len(y)).split(cfg.dataset.batch_size):
        loss = F.cross_entropy(net(x[idx].contiguous(memory_format=layout)), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for (b)")
    parser.add_argument("--data-dir", help="dlpy data_dir (default: dlpy's)")
    args = parser.parse_args()

    cfg = config(args.data_dir)
    data = build_data(cfg)
    data.root = Path(
        cfg.dataset.root
    ).expanduser()  # where dlpy left the files, in torchvision's layout
    # the same 55,000 images dlpy trains on: the split is seeded, so recompute its indices
    perm = torch.randperm(
        len(data.train) + len(data.val),
        generator=torch.Generator().manual_seed(cfg.dataset.split_seed),
    )
    train_idx = perm[cfg.dataset.val_size :].tolist()

    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads; one epoch of {len(train_idx)} images")
    c = tensor_epoch(cfg, data)
    print(f"(c)  minimal tensor loop     {c:7.1f} s/epoch")
    c_nhwc = tensor_epoch(cfg, data, channels_last=True)
    print(f"(c') the same, channels_last {c_nhwc:7.1f} s/epoch")
    b = dataloader_epoch(cfg, data, train_idx, args.workers)
    print(f"(b)  DataLoader loop ({args.workers} wkr) {b:7.1f} s/epoch")
    a, startup = dlpy_epoch(args.data_dir)
    print(f"(a)  dlpy train              {a:7.1f} s/epoch")
    print(
        f"a/b = {a / b:.2f} (target <= 0.65)   a/c = {a / c:.2f} (target <= 1.05)   "
        f"a/c' = {a / c_nhwc:.2f} (same layout: dlpy's own cost)"
    )
    print(f"dlpy start-up to first training step: {startup:.1f} s")


if __name__ == "__main__":
    main()
