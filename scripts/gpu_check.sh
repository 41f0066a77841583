#!/usr/bin/env bash
# The CUDA paths, run for real on the GPUs of this machine, in under 8 minutes:
#   fp32, bf16 and fp16 training of the cnn preset and ResNet-20 on synthetic CIFAR-shaped images,
#   a resume, a NaN injection (the run stops, diverged, and its checkpoint holds finite weights),
#   DDP over NCCL on every GPU present (one process where there is one), and the benchmark's
#   ratios on the GPU with the achieved FLOP/s against the GPU's measured matmul rate.
# The suite's tests never need a GPU; this script is for a machine that has one.
#
#   bash scripts/gpu_check.sh            (after `make train`: the venv in .venv)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
failures=0

step() {  # step NAME COMMAND...: run it, print OK or FAILED with its last lines
  local name=$1
  shift
  local start=$SECONDS
  if "$@" >"$WORK/log" 2>&1; then
    echo "OK      $name ($((SECONDS - start)) s)"
  else
    echo "FAILED  $name ($((SECONDS - start)) s)"
    tail -5 "$WORK/log" | sed 's/^/        /'
    failures=$((failures + 1))
  fi
}

"$PY" - "$WORK/images" <<'PY'
# 10 classes of 32x32 RGB noise, each with a bright bar at its own row: CIFAR's shape, learnable
import sys
from pathlib import Path

import numpy as np
from PIL import Image

rng = np.random.default_rng(0)
for split, n in (("train", 200), ("val", 20), ("test", 20)):
    for label in range(10):
        folder = Path(sys.argv[1]) / split / f"class{label}"
        folder.mkdir(parents=True)
        for i in range(n):
            x = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
            x[label * 3 + 1] = 255
            Image.fromarray(x).save(folder / f"{i}.png")
PY
"$PY" -c "import torch; print('torch', torch.__version__, '|', torch.cuda.device_count(), 'x', torch.cuda.get_device_name())"

DATA=(dataset=image_folder "dataset.root=$WORK/images" dataset.image_size=32 trainer.device=cuda)
RUN=(~callbacks.progress_bar trainer.max_epochs=2)
for model in cnn resnet; do
  for precision in fp32 bf16 fp16; do
    step "train model=$model precision=$precision" .venv/bin/dlpy train "model=$model" "${DATA[@]}" "${RUN[@]}" \
      "trainer.precision=$precision" "hydra.run.dir=$WORK/$model-$precision"
  done
done
step "resume a finished 2-epoch run to 3 epochs" .venv/bin/dlpy train model=cnn "${DATA[@]}" "${RUN[@]}" \
  trainer.max_epochs=3 "trainer.resume=$WORK/cnn-fp32" "hydra.run.dir=$WORK/cnn-fp32"
step "channels_last and torch.compile" .venv/bin/dlpy train model=cnn "${DATA[@]}" "${RUN[@]}" \
  trainer.channels_last=true trainer.compile=true "hydra.run.dir=$WORK/compiled"

step "NaN injection: a diverged run, finite weights, no step on the NaN" "$PY" - "$WORK" <<'PY'
import math
import sys

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from dlpy import CONF_DIR
from dlpy.build import build_data, build_task, build_trainer
from dlpy.errors import Diverged

work = sys.argv[1]
overrides = ["model=cnn", "dataset=image_folder", f"dataset.root={work}/images"]
overrides += ["dataset.image_size=32", "trainer.device=cuda", "trainer.max_epochs=1"]
with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
    cfg = compose("train", [*overrides, "~callbacks.progress_bar"])
trainer = build_trainer(cfg, f"{work}/nan")
task = build_task(cfg)
step = task.training_step


def poisoned(batch, i):  # the loss of step 3 is NaN, on the device: no host sync tells the trainer
    x, y = batch
    return step((x * (math.nan if i == 3 else 1.0), y), i)


task.training_step = poisoned
seen = {}


def before_step(net, args):  # the weights each training step starts from, by step index
    if net.training:
        seen[trainer.step] = [p.detach().clone() for p in net.parameters()]


task.net.register_forward_pre_hook(before_step)
try:
    trainer.fit(task, build_data(cfg))
    sys.exit("the NaN loss did not stop the run")
except Diverged as err:
    print(err)
    assert "step 4" in str(err), err
after_nan = list(task.net.parameters())
assert all(torch.equal(a, b) for a, b in zip(seen[3], seen[4])), "the NaN step changed the weights"
assert all(p.isfinite().all() for p in after_nan)
print("the NaN step left every weight as it was")
PY

gpus=$("$PY" -c "import torch; print(torch.cuda.device_count())")
step "DDP over NCCL on $gpus GPU(s)" .venv/bin/torchrun --standalone "--nproc_per_node=$gpus" -m dlpy train model=cnn \
  "${DATA[@]}" "${RUN[@]}" trainer.strategy=ddp "hydra.run.dir=$WORK/ddp"

echo "benchmark on the GPU (fp32, then bf16):"
"$PY" scripts/benchmark.py --device cuda --repeats 3 --no-dataloader --steps-scale 4 --networks mlp,pytorch_convnet,cnn,resnet20,lstm,vae \
  | tail -12
"$PY" scripts/benchmark.py --device cuda --repeats 3 --no-dataloader --steps-scale 4 --precision bf16 --networks cnn,resnet20 \
  | tail -6
echo "$failures failed"
exit $((failures > 0))
