"""Bad input ends in one line naming what is wrong, never in a traceback: a fuzz over every key.

The cases run in this process through `dlpy.cli.main`, the code the console script runs, so a few
hundred of them take seconds; each fails before training starts, or trains a step of the smoke
config.
"""

import pytest
from conftest import FAST
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from dlpy import CONF_DIR

SMOKE = [*FAST, "trainer.max_steps=1", "trainer.limit_eval_batches=1"]
# Wrong values by the kind of a key's value: other types, and a negative number where none makes
# sense.
WRONG = {
    bool: ["abc", "2"],
    (int, float): ["abc", "null", "-7"],
    str: ["123", "[a,b]"],
    list: ["abc", "[abc]", "[-7]"],
}
# Paths are left out: what a wrong path gives is the data search's own message (tests/test_data.py).
PATHS = {"data_dir", "dataset.root", "dataset.system_dir"}
SYNTAX = [  # (what is typed, what the error line must name)
    ("a=b=c", "a=b=c"),
    ("=1", "=1"),
    ("@=1", "@=1"),
    ("model=[", "model=["),
    ("x", "x"),
    ("a==b", "a==b"),
    ("trainer.max_epochs=${oops", "trainer.max_epochs"),
    ("'x'=1", "'x'=1"),
    ("-x=1", "-x=1"),
    ("a=b)", "a=b)"),
    ("a=choice(1,2", "a=choice(1,2"),
    ("a=range(1,x)", "a=range(1,x)"),
    ("key with space=1", "key with space=1"),
    ("a={b:", "a={b:"),
    ("a=[1,2]]", "a=[1,2]]"),
    ("trainer.max_epochs=", "trainer.max_epochs"),
    ("+trainer.max_epochs=1", "trainer.max_epochs"),
    ("model=mlp,cnn", "model"),
    ("trainer.max_epochs=1,2", "max_epochs"),
    ("~dataset", "dataset"),
    ("~trainer", "trainer"),
    ("foo=bar", "foo"),
    ("trainer.max_epoch=3", "trainer.max_epoch"),
    ("+model.bogus=1", "bogus"),
    ("+optimizer.bogus=1", "bogus"),
    ("+trainer.bogus=1", "bogus"),
    ("model=nosuch", "nosuch"),
    ("dataset=nosuch", "nosuch"),
    ("optimizer=nosuch", "nosuch"),
    ("trainer=nosuch", "nosuch"),
    ("scheduler=nosuch", "nosuch"),
    ("experiment=nosuch", "nosuch"),
    ("hydra/launcher=nosuch", "nosuch"),
    ("model.name=nosuch", "model.name"),
    ("model.task.name=nosuch", "model.task.name"),
    ("dataset.name=nosuch", "dataset.name"),
    ("optimizer.name=nosuch", "optimizer.name"),
    ("scheduler.name=nosuch", "scheduler.name"),
    ("trainer.precision=fp8", "trainer.precision"),
    ("trainer.device=tpu", "trainer.device"),
    ("trainer.mode=up", "trainer.mode"),
    ("trainer.on_nan=maybe", "trainer.on_nan"),
    ("dataset.scaling=bogus", "dataset.scaling"),
    ("trainer.max_epochs=${trainer.nosuch}", "trainer.nosuch"),
    ("trainer.max_epochs=${oc.env:DLPY_NO_SUCH_VARIABLE}", "DLPY_NO_SUCH_VARIABLE"),
    ("trainer.resume=/nonexistent/run", "/nonexistent/run"),
    ("dataset.val_size=1000000", "dataset.val_size"),
    ("dataset.batch_size=0", "dataset.batch_size"),
    ("model.dropout=1.5", "dropout"),
    ("scheduler.pct_start=1.5", "pct_start"),
    ("optimizer.betas=[0.9]", "betas"),
    ("seed=4294967296", "seed"),
    ("trainer.max_epochs=0", "max_epochs"),
    ("--bogus", "--bogus"),
    ("--cfg", "--cfg"),
    ("--cfg=nosuch", "nosuch"),
]


def generated_cases():
    """Every key of the default config, each with the wrong values of its kind."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", SMOKE)
    cases = []
    for key, value in flat(OmegaConf.to_container(cfg, resolve=True)).items():
        kinds = [
            kind
            for kind in WRONG
            if isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        ]
        if key in PATHS or not kinds:
            continue
        for wrong in WRONG[kinds[0]]:
            # a wrong element of a list is named by the config node it belongs to
            cases.append(
                (
                    f"{key}={wrong}",
                    key.rsplit(".", 1)[0] if wrong.startswith("[") and kinds[0] is list else key,
                )
            )
    return cases


def flat(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out |= flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


CASES = SYNTAX + generated_cases()


def test_the_fuzz_covers_at_least_200_bad_inputs():
    assert len(CASES) >= 200 and len(set(CASES)) == len(CASES)


@pytest.mark.slow
@pytest.mark.parametrize("override, named", CASES, ids=[c[0] for c in CASES])
def test_bad_input_runs_or_fails_in_one_line_naming_the_key(override, named, run_cli, tmp_path):
    args = [*SMOKE, f"hydra.run.dir={tmp_path / 'run'}"]
    status, out, err = run_cli(
        "train", *([*args, override] if not override.startswith("-") else [override, *args])
    )
    assert "Traceback" not in out + err
    if status == 0:
        return  # the value was acceptable after all and the smoke run trained
    assert err.count("\n") == 1 and err.startswith("dlpy: error: "), err
    assert named in err, err
