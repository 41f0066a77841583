"""Sweeps: job folders named by their overrides, reports over seeds, Optuna, launchers, resume."""

import csv
import json
import statistics
import subprocess
import sys

import pytest
import yaml
from conftest import FAST, presets
from omegaconf import OmegaConf
from test_cli import dlpy

from dlpy.report import write_report
from dlpy.sweep import SweepFailed, SweepRecord, check_jobs, job_dirname, threads_per_job


def only_sweep(tmp_path):
    sweeps = list((tmp_path / "outputs" / "multirun").glob("*/*"))
    assert len(sweeps) == 1, sweeps
    return sweeps[0]


def metrics(job):
    return json.loads((job / "metrics.json").read_text())


@pytest.mark.parametrize(
    "overrides, name",
    [
        ("model=mlp,seed=1", "model=mlp,seed=1"),
        (
            "dataset.root=/data/x y,model.layers=[32,M]",
            "dataset.root=_data_x_y,model.layers=[32,M]",
        ),
        ("", "7"),  # nothing varies: the job's number, as Hydra names it
    ],
)
def test_job_folder_names_are_the_overrides_made_safe(overrides, name):
    assert job_dirname(7, overrides) == name


def test_a_long_job_folder_name_is_cut_and_stays_unique():
    a, b = (job_dirname(0, ",".join(f"key{i}={i + j}" for i in range(60))) for j in (0, 1))
    assert len(a.encode()) <= 200 and a != b


def test_parallel_jobs_share_the_cores_out(monkeypatch):
    from hydra.core.hydra_config import HydraConfig

    monkeypatch.setattr("dlpy.sweep.usable_cores", lambda: 8)
    assert threads_per_job() == 0  # outside a sweep: torch's default
    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
    for launcher, threads in [
        ({"n_jobs": 2}, 4),
        ({"n_jobs": -1}, 1),
        ({"n_jobs": 16}, 1),
        ({"cpus_per_task": 3}, 3),
    ]:
        monkeypatch.setattr(
            HydraConfig,
            "get",
            staticmethod(lambda launcher=launcher: OmegaConf.create({"launcher": launcher})),
        )
        assert threads_per_job() == threads, launcher


def test_the_joblib_workers_stop_when_the_sweep_ends():
    import os

    from joblib.externals.loky import get_reusable_executor

    from dlpy.sweep import StopJoblibWorkers

    StopJoblibWorkers().on_multirun_end(
        config=None
    )  # no worker yet, or one left by another test: stopped
    worker = get_reusable_executor(max_workers=1).submit(os.getpid).result()
    assert worker != os.getpid()
    os.kill(worker, 0)  # joblib keeps it for the next job
    StopJoblibWorkers().on_multirun_end(config=None)
    with pytest.raises(
        ProcessLookupError
    ):  # stopped and reaped, not idling until this process exits
        os.kill(worker, 0)


def write_job(folder, overrides, result, monitor=("val/acc", "max")):
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (folder / ".hydra" / "config.yaml").write_text(
        yaml.safe_dump({"trainer": dict(zip(("monitor", "mode"), monitor, strict=False))})
    )
    if result is not None:
        (folder / "metrics.json").write_text(json.dumps(result))


@pytest.mark.parametrize("mode", ["max", "min"])
def test_report_groups_seeds_with_mean_and_std_best_first(tmp_path, mode):
    scores = {("0.1", "0"): 0.5, ("0.1", "1"): 0.7, ("0.01", "0"): 0.8, ("0.01", "1"): 0.9}
    for (lr, seed), score in scores.items():
        write_job(
            tmp_path / f"lr={lr},seed={seed}",
            ["model=mlp", f"optimizer.lr={lr}", f"seed={seed}"],
            {"status": "finished", "val/acc": score, "test/acc": score - 0.1},
            ("val/acc", mode),
        )
    write_job(
        tmp_path / "lr=1,seed=0",
        ["model=mlp", "optimizer.lr=1", "seed=0"],
        {"status": "diverged", "error": "train/loss is nan at step 3"},
        ("val/acc", mode),
    )
    write_job(
        tmp_path / "lr=1,seed=1", ["model=mlp", "optimizer.lr=1", "seed=1"], None, ("val/acc", mode)
    )

    text = write_report(tmp_path)
    groups = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert [g["optimizer.lr"] for g in groups] == (
        ["0.01", "0.1", "1"] if mode == "max" else ["0.1", "0.01", "1"]
    )
    best = groups[0]
    values = [s for (lr, _), s in scores.items() if lr == best["optimizer.lr"]]
    assert float(best["val/acc mean"]) == pytest.approx(statistics.fmean(values))
    assert float(best["val/acc std"]) == pytest.approx(statistics.stdev(values))
    assert "model" not in groups[0]  # the same in every job: not a column
    assert f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}" in text
    assert "| lr=1,seed=0 | diverged | train/loss is nan at step 3 |" in text
    assert "| lr=1,seed=1 | unfinished |" in text  # no metrics.json: killed, or still running
    jobs = list(csv.DictReader((tmp_path / "jobs.csv").open()))
    assert len(jobs) == 6 and {j["status"] for j in jobs} == {"finished", "diverged", "unfinished"}


def test_a_sweep_with_failed_jobs_fails_naming_them_and_a_diverged_job_does_not(tmp_path):
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    record = SweepRecord()
    record.on_multirun_start(config)
    write_job(tmp_path / "lr=0.1", ["optimizer.lr=0.1"], {"status": "finished", "val/acc": 0.9})
    write_job(tmp_path / "lr=1", ["optimizer.lr=1"], {"status": "diverged", "error": "nan"})
    record.on_multirun_end(config)
    check_jobs()  # a diverged job ran its values to the end: a result, not a failure

    write_job(tmp_path / "lr=-1", ["optimizer.lr=-1"], {"status": "failed", "error": "lr < 0"})
    write_job(tmp_path / "lr=2", ["optimizer.lr=2"], None)  # no metrics.json: its process died
    write_job(tmp_path / "lr=3", ["optimizer.lr=3"], {"status": "interrupted"})
    record.on_multirun_end(config)
    with pytest.raises(SweepFailed, match=r"3 of 5 jobs failed \(lr=-1, lr=2, lr=3\)") as failed:
        check_jobs()
    assert str(tmp_path) in str(failed.value) and failed.value.exit_code == 1

    record.on_multirun_start(config)  # the next sweep in this process starts with none failed
    check_jobs()


# What the process driving a joblib sweep does before its jobs start: dlpy's CLI modules, the
# composed config, the sweep's folder named. Prints that folder and the heavy modules imported.
DRIVER = """
import sys
from hydra import compose, initialize_config_dir
from dlpy import CONF_DIR, cli, job, sweep  # noqa: F401  (what `dlpy train -m` imports)
with initialize_config_dir(CONF_DIR, version_base="1.3"):
    cfg = compose("train", ["launcher=joblib"], return_hydra_config=True)
print(cfg.hydra.sweep.dir)
print(sorted(m for m in ("torch", "torchvision") if m in sys.modules))
"""


@pytest.mark.slow  # a fresh interpreter
def test_the_sweep_driver_names_its_folder_without_importing_torch(tmp_path):
    # The jobs of a joblib sweep run in workers: torch's import in the driver (about 3 s on 2
    # cores) is start-up no job needs, and took the sweep from 0.85x to 1.00x of a serial one.
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    folder, heavy = proc.stdout.splitlines()
    assert (tmp_path / folder).is_dir() and folder.startswith("outputs/multirun/")
    assert heavy == "[]"


@pytest.mark.slow  # starts dlpy report in a subprocess
def test_report_of_a_folder_without_jobs_says_so(tmp_path):
    proc = dlpy("report", str(tmp_path), cwd=tmp_path, check=False)
    assert (
        proc.returncode == 2 and "no job folders" in proc.stderr and "Traceback" not in proc.stderr
    )


@pytest.mark.slow
def test_seed_sweep_has_one_folder_per_seed_and_a_report(tmp_path, data_dir):
    dlpy("train", "-m", *FAST, "model=mlp", "seed=0,1", cwd=tmp_path, data_dir=data_dir)
    sweep = only_sweep(tmp_path)
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["seed=0", "seed=1"]
    saved = OmegaConf.load(sweep / "multirun.yaml")  # the sweep's config, once, at its root
    assert "seed=0,1" in saved.hydra.overrides.task
    accs = [metrics(sweep / f"seed={s}")["test/acc"] for s in (0, 1)]
    assert (sweep / "report.csv").is_file()  # written when the sweep ended

    out = dlpy("report", str(sweep), cwd=tmp_path).stdout
    assert f"| 2 | {statistics.fmean(accs):.4f} ± {statistics.stdev(accs):.4f} |" in out


@pytest.mark.slow
def test_rerunning_a_sweep_with_resume_auto_skips_finished_jobs_and_continues_the_others(
    tmp_path, data_dir
):
    command = ["train", "-m", *FAST, "model=mlp", "seed=0,1,2"]
    dlpy(*command, cwd=tmp_path, data_dir=data_dir)
    sweep = only_sweep(tmp_path)
    finished = (sweep / "seed=0" / "metrics.json").read_text()
    # seed=1 stopped after its checkpoint (its status says so); seed=2 died before saving anything
    (sweep / "seed=1" / "metrics.json").write_text(json.dumps({"status": "interrupted"}))
    for path in [sweep / "seed=2" / "metrics.json", *(sweep / "seed=2" / "checkpoints").iterdir()]:
        path.unlink()

    proc = dlpy(*command, "trainer.resume=auto", cwd=tmp_path, data_dir=data_dir)
    assert only_sweep(tmp_path) == sweep and f"continuing the sweep in {sweep}" in proc.stderr
    assert (sweep / "seed=0" / "metrics.json").read_text() == finished  # skipped, untouched
    assert "seed=0 has finished, skipping it" in proc.stdout + proc.stderr
    assert (
        f"resumed from {sweep / 'seed=1' / 'checkpoints' / 'last.pt'}" in proc.stdout + proc.stderr
    )
    assert metrics(sweep / "seed=1")["status"] == metrics(sweep / "seed=2")["status"] == "finished"


@pytest.mark.slow
def test_optuna_search_runs_its_trials_and_records_the_best(tmp_path, data_dir):
    dlpy(
        "train",
        "-m",
        "hparams_search=mlp",
        *FAST,
        "hydra.sweeper.n_trials=3",
        cwd=tmp_path,
        data_dir=data_dir,
    )
    sweep = only_sweep(tmp_path)
    trials = [p for p in sweep.iterdir() if (p / "metrics.json").is_file()]
    assert len(trials) == 3 and all(
        "optimizer.lr=" in p.name and "model.dropout=" in p.name for p in trials
    )
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == max(
        metrics(p)["val/acc"] for p in trials
    )  # maximised: the classifier's val/acc
    assert set(best.best_params) == {
        "optimizer.lr",
        "optimizer.weight_decay",
        "model.hidden",
        "model.dropout",
    }
    assert (sweep / "multirun.yaml").is_file() and (sweep / "report.csv").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_launchers_run_the_jobs_in_processes_of_their_own(launcher, tmp_path, data_dir):
    dlpy(
        "train",
        "-m",
        f"launcher={launcher}",
        *FAST,
        "model=mlp",
        "seed=0,1",
        cwd=tmp_path,
        data_dir=data_dir,
    )
    sweep = only_sweep(tmp_path)
    assert [metrics(sweep / f"seed={s}")["status"] for s in (0, 1)] == ["finished", "finished"]
    if launcher == "submitit_local":
        assert list((sweep / ".submitit").iterdir())  # submitit's own job records


def test_a_launcher_whose_plugin_is_missing_names_the_extra_to_install(tmp_path):
    from dlpy.sweep import installed

    if installed("hydra_plugins.hydra_ray_launcher"):
        pytest.skip("hydra-ray-launcher is installed here, so nothing is missing")
    for args in (["launcher=ray"], ["hydra/launcher=ray"]):
        proc = dlpy("train", "-m", *args, "model=mlp", cwd=tmp_path, check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "hydra-ray-launcher" in proc.stderr and "dlpy[ray]" in proc.stderr


@pytest.mark.parametrize("preset", presets("hparams_search"))
def test_every_search_preset_searches_keys_its_config_has(preset, data_dir):
    from hydra import compose, initialize_config_dir

    from dlpy import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "train", [f"data_dir={data_dir}", f"hparams_search={preset}"], return_hydra_config=True
        )
    assert cfg.hydra.sweeper.direction == {"max": "maximize", "min": "minimize"}[cfg.trainer.mode]
    for key in cfg.hydra.sweeper.params:
        assert OmegaConf.select(cfg, key, default="missing") != "missing", (
            f"{preset}: {key} is not in the config"
        )


@pytest.mark.parametrize(
    "preset", [p for p in presets("launcher") if p != "ray"]
)  # ray: the plugin is not pinned
def test_every_launcher_preset_selects_its_plugin(preset, data_dir):
    from hydra import compose, initialize_config_dir

    from dlpy import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "train", [f"data_dir={data_dir}", f"launcher={preset}"], return_hydra_config=True
        )
    assert preset.split("_")[0] in cfg.hydra.launcher._target_.lower()
    assert (
        cfg.trainer.threads == 0
    )  # shared out when the job runs; outside a sweep, torch's default


def test_resume_auto_without_a_sweep_picks_the_newest_run_of_the_same_overrides(
    tmp_path, monkeypatch
):
    from dlpy.cli import run_dir_for_resume

    runs = {
        "2026-01-01/09-00-00": ["model=mlp"],
        "2026-01-02/09-00-00": ["model=mlp", "trainer.resume=auto"],
        "2026-01-03/09-00-00": ["model=cnn"],
    }
    for name, overrides in runs.items():
        (tmp_path / "outputs" / name / ".hydra").mkdir(parents=True)
        (tmp_path / "outputs" / name / ".hydra" / "overrides.yaml").write_text(
            yaml.safe_dump(overrides)
        )
    monkeypatch.chdir(tmp_path)
    newest = tmp_path / "outputs" / "2026-01-02" / "09-00-00"
    assert run_dir_for_resume(["model=mlp", "trainer.resume=auto"]) == [f"hydra.run.dir='{newest}'"]
    assert (
        run_dir_for_resume(["model=resnet", "trainer.resume=auto"]) == []
    )  # nothing to continue: a new run
