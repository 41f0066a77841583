"""The README and docs/ stay true: size, links, and every command they show.

README.md stays short; every relative link (and #anchor) resolves; every `dlpy train ...` in a code
block or inline code names existing config groups and presets and composes with Hydra; every other
`dlpy <command>` exists; every `make <target>` is a target of the Makefile.
"""

import importlib.util
import os
import re
import shlex
from pathlib import Path

import pytest

import dlpy
from dlpy.cli import main

ROOT = Path(__file__).resolve().parents[1]
CONF = Path(dlpy.CONF_DIR)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_LIMIT = 15_000
CELL_LIMIT = 120

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def relative(page):
    return page.relative_to(ROOT).as_posix()


def code_blocks(text):
    return FENCE.findall(text)


def prose(text):
    """The page without its code blocks."""
    return FENCE.sub("", text)


def shell_lines(text):
    """Each command line of the code blocks, comments cut off and continued lines joined."""
    for block in code_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                yield line


def code_lines(text):
    """The command lines of the code blocks and the inline code of the prose."""
    return [*shell_lines(text), *INLINE.findall(prose(text))]


def commands(page):
    """(where, words after `dlpy`) for every dlpy command in a code block or inline code."""
    for line in code_lines(page.read_text(encoding="utf-8")):
        if not line.startswith(("dlpy ", "torchrun ")):
            continue
        words = [os.path.expandvars(word) for word in shlex.split(line)]  # $HOME as a shell would
        if words[0] == "torchrun" and "dlpy" in words:  # torchrun ... -m dlpy train ...
            words = words[words.index("dlpy") :]
        if words[:1] == ["dlpy"] and len(words) > 1:
            yield f"{relative(page)}: {line}", words[1:]


def train_commands():
    """Each distinct `dlpy train ...` of the pages, named by the first page that shows it."""
    seen = {}
    for page in PAGES:
        for where, args in commands(page):
            if args[0] == "train":
                seen.setdefault(tuple(args[1:]), where)
    return [pytest.param(list(args), id=where) for args, where in seen.items()]


def headings(page):
    """GitHub's anchors of the page's headings."""
    anchors = set()
    for line in prose(page.read_text(encoding="utf-8")).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower().replace("`", "")
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def test_the_readme_is_at_most_15000_bytes():
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_LIMIT, f"README.md is {size} bytes; move reference material to docs/"


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_every_relative_link_resolves_to_a_file_and_heading(page):
    broken = []
    for target in LINK.findall(prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.is_file():
            if file == ROOT / "docs" / "callbacks.md" and not (CONF / "callbacks").is_dir():
                continue  # written with the callbacks group itself, which this tree lacks yet
            broken.append(f"{target}: no file {file}")
        elif anchor and file.suffix == ".md" and anchor not in headings(file):
            broken.append(f"{target}: no heading #{anchor} in {relative(file)}")
    assert not broken, f"{relative(page)}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_table_cells_stay_short(page):
    long = [
        cell.strip()[:60]
        for line in prose(page.read_text(encoding="utf-8")).splitlines()
        if line.startswith("|")
        for cell in line.strip("|").split(" | ")
        if len(cell.strip()) > CELL_LIMIT
    ]
    assert not long, f"{relative(page)}: cells over {CELL_LIMIT} characters: {long}"


def test_every_dlpy_subcommand_shown_exists(capsys):
    main(["--help"])
    usage = capsys.readouterr().out
    known = set(re.findall(r"^  (\w+)", usage, re.M)) | {"--help", "-h", "help"}  # dlpy's own
    unknown = [where for page in PAGES for where, args in commands(page) if args[0] not in known]
    assert not unknown, f"subcommands not in dlpy's usage ({sorted(known)}): {unknown}"


def test_every_make_target_named_exists_in_the_makefile():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w.-]+):", makefile, re.M))
    named = {
        (relative(page), line.split()[1])
        for page in PAGES
        for line in code_lines(page.read_text(encoding="utf-8"))
        if line.startswith("make ")
    }
    missing = sorted(f"{where}: make {target}" for where, target in named if target not in targets)
    assert not missing, f"not targets of the Makefile: {missing}"


def overrides_of(args):
    """The overrides of `dlpy train ...`, without Hydra's flags."""
    flags_with_value = {"--cfg", "-c", "--package", "-p", "--config-name", "-cn", "--info"}
    overrides, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in flags_with_value:
            skip = True
        elif not arg.startswith("-"):
            overrides.append(arg)
    return overrides


@pytest.mark.parametrize("args", train_commands())
def test_every_train_command_names_existing_groups_and_presets(args):
    reason = why_not_composable(args)
    if reason and "callbacks" in reason:
        pytest.skip(reason)
    groups = {p.name for p in CONF.iterdir() if p.is_dir()}
    for override in overrides_of(args):
        key, sep, value = override.lstrip("+~").partition("=")
        if sep and key in groups:
            for choice in value.strip("[]").split(","):  # logger=[tensorboard,mlflow] too
                assert (CONF / key / f"{choice}.yaml").is_file(), f"no conf/{key}/{choice}.yaml"
        elif sep:
            top = key.split(".")[0]
            assert top in groups or top in top_level_keys(), (
                f"{override}: {top!r} is no config group nor a key of conf/train.yaml"
            )


def top_level_keys():
    """The keys conf/train.yaml sets itself (seed, data_dir, hydra), beside its config groups."""
    import yaml

    return set(yaml.safe_load((CONF / "train.yaml").read_text(encoding="utf-8"))) - {"defaults"}


def choices(override):
    """A sweep override as the plain overrides of its jobs (one per choice, the first value of a
    range); an Optuna search space (interval, ...) is left to the sweeper: None."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_override(override)
    if not parsed.is_sweep_override():
        return [override]
    if parsed.value_type.name != "SIMPLE_CHOICE_SWEEP":
        return None
    key = ("~" if parsed.is_delete() else "+" if parsed.is_add() else "") + parsed.key_or_group
    values = list(parsed.sweep_string_iterator())
    groups = {p.name for p in CONF.iterdir() if p.is_dir()}
    return [f"{key}={v}" for v in (values if parsed.key_or_group in groups else values[:1])]


def jobs(args):
    """The overrides of each configuration a command composes (each group choice of a sweep)."""
    runs = [[]]
    for override in overrides_of(args):
        options = choices(override)
        if options is None:
            continue
        runs = [run + [option] for run in runs for option in options]
    return runs


def why_not_composable(args):
    """A reason this test cannot compose the command, or None."""
    text = " ".join(args)
    if "<" in text or "..." in text:
        return "a placeholder (<run>, ...) stands for what the reader fills in"
    if (
        "launcher=ray" in text
        and importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None
    ):
        return "launcher=ray needs hydra-ray-launcher, which make does not install"
    if "callbacks." in text and not (CONF / "callbacks").is_dir():
        return "the callbacks group is not in this tree yet"
    return None


@pytest.mark.slow  # about 0.15 s a command, some 15 s for all of them
@pytest.mark.parametrize("args", train_commands())
def test_every_train_command_composes_with_hydra(args):
    """Hydra composes every `dlpy train ...` shown: its groups, presets and keys exist.

    Nothing is resolved or built, so no data, environment or run folder is needed: a command that
    resumes from outputs/... composes like any other (the folder is only looked up when it runs).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    reason = why_not_composable(args)
    if reason:
        pytest.skip(reason)
    GlobalHydra.instance().clear()  # a `dlpy train` run in an earlier test may have left it set
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for overrides in jobs(args):
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
            assert "trainer" in cfg and "model" in cfg


def test_the_readme_counts_every_model_preset():
    """The README's "`model` (N presets" is the number of files in conf/model, as they grow."""
    count = len(list((ROOT / "conf" / "model").glob("*.yaml")))
    assert f"`model` ({count} presets" in (ROOT / "README.md").read_text()
