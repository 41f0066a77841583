"""The `_course` presets: the TensorFlow 2 course's own settings beside dlpy's presets."""

import torch
from torch import nn

from dlpy.build import build_data, build_task
from dlpy.trainer import Trainer


def dense_widths(net):
    return [m.out_features for m in net.modules() if isinstance(m, nn.Linear)]


def test_vgg13_course_has_the_256_64_head_and_the_preset_keeps_256_128(make_cfg):
    course = build_task(make_cfg("experiment=vgg13_cifar10_course"))
    assert dense_widths(course.net) == [256, 64, 10]
    assert list(make_cfg("experiment=vgg13_cifar10").model.fc) == [256, 128]


def test_dcgan_course_steps_the_generator_once_per_five_discriminator_steps(make_cfg):
    cfg = make_cfg("experiment=dcgan_course", "model.task.fid=false")
    assert make_cfg("model=dcgan").model.task.d_steps == 1
    task, data = build_task(cfg), build_data(cfg)
    trainer = Trainer(device="cpu")
    trainer.setup(task, data)
    trainer.optimizers = task.configure_optimizers()
    trainer.schedulers = [None, None]
    batches = data.train_batches()
    generator = [p.detach().clone() for p in task.net.generator.parameters()]
    discriminator = [p.detach().clone() for p in task.net.discriminator.parameters()]
    changed = []
    for step in range(5):
        task.training_step(next(batches), step)
        now = list(task.net.generator.parameters())
        changed.append(not all(torch.equal(a, b) for a, b in zip(generator, now, strict=True)))
    assert changed == [False, False, False, False, True]
    after = task.net.discriminator.parameters()
    assert not all(torch.equal(a, b) for a, b in zip(discriminator, after, strict=True))
