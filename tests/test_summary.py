"""`dlpy summary`, the run log's summary, and the model's sizes in metrics.json."""

import json

import torch

from dlpy.build import build_task
from dlpy.summary import example_inputs, model_numbers, summarize


def test_summary_of_resnet_prints_resnet20s_parameters_and_the_visualize_layers(run_cli):
    status, out, err = run_cli("summary", "model=resnet", "dataset=cifar10")
    assert status == 0, err
    # He et al. (2016), table 6: ResNet-20 has 0.27 M parameters (on CIFAR-10's 3 channels)
    assert "net: 0.27 M parameters (272,474 trainable, 0 frozen)" in out
    assert "one sample of 3x32x32" in out and "Conv2d (0)" in out and "[1, 64, 8, 8]" in out
    assert "dlpy visualize layer= takes: stem.0.0, stem.0.1" in out


def test_summary_of_a_gan_gives_each_network_and_the_totals_add_them_up(make_cfg):
    cfg = make_cfg("model=dcgan")
    task = build_task(cfg)
    stats = summarize(task, example_inputs(cfg))
    numbers = model_numbers(task, stats)
    generator = sum(p.numel() for p in task.net.generator.parameters())
    discriminator = sum(p.numel() for p in task.net.discriminator.parameters())
    assert numbers["model/generator/params"] == generator
    assert numbers["model/discriminator/params"] == discriminator
    assert numbers["model/params"] == generator + discriminator
    flops = (
        numbers["model/generator/flops_per_sample"]
        + numbers["model/discriminator/flops_per_sample"]
    )
    assert numbers["model/flops_per_sample"] == flops
    assert str(stats["generator"].summary_list[-1].output_size) == "[1, 1, 28, 28]"


def test_flops_are_twice_the_multiply_adds_of_one_sample(make_cfg):
    cfg = make_cfg("model=mlp")
    task = build_task(cfg)
    numbers = model_numbers(task, summarize(task, example_inputs(cfg)))
    linears = [m for m in task.net.modules() if isinstance(m, torch.nn.Linear)]
    # a linear layer of one sample: a multiply-add per weight (torchinfo counts the bias as one)
    assert numbers["model/flops_per_sample"] == 2 * sum(
        m.weight.numel() + m.out_features for m in linears
    )
    frozen = linears[0].weight.numel() + linears[0].bias.numel()
    linears[0].requires_grad_(False)
    numbers = model_numbers(task, summarize(task, example_inputs(cfg)))
    assert numbers["model/params"] - numbers["model/trainable_params"] == frozen


def test_the_summary_changes_neither_the_weights_nor_the_random_state(make_cfg):
    cfg = make_cfg("model=conv_vae")  # batch norm buffers, and a VAE draws its noise
    task = build_task(cfg)
    before = {k: v.clone() for k, v in task.state_dict().items()}
    rng = torch.get_rng_state()
    summarize(task, example_inputs(cfg))
    assert all(module.training for module in task.modules())  # back in training mode
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in task.state_dict().items())


def test_a_run_logs_its_summary_and_keeps_its_sizes(run_cli, tmp_path):
    run = tmp_path / "run"
    args = ["trainer=debug", "~callbacks.progress_bar", "model=cnn", f"hydra.run.dir={run}"]
    status, _, err = run_cli("train", *args, "dataset.val_size=100")
    assert status == 0, err
    log = (run / "job.log").read_text()
    assert "Layer (type (var_name))" in log and "Output Shape" in log
    metrics = json.loads((run / "metrics.json").read_text())
    assert f"net: {metrics['model/params'] / 1e6:.2f} M parameters" in log
    assert metrics["model/flops_per_sample"] > 2 * metrics["model/params"]  # a convnet reuses


def test_summary_of_a_bad_override_or_depth_fails_in_one_line(run_cli):
    status, _, err = run_cli("summary", "model=nosuch")
    assert status == 2 and "model preset 'nosuch'" in err and err.count("\n") == 1
    status, _, err = run_cli("summary", "depth=deep")
    assert status == 2 and "depth" in err and err.count("\n") == 1
