"""Every dlpy module imports on its own and in any order, and imports inside functions say why.

A module that only imports because another one happened to be imported first, or a cycle that
only shows in one order, fails here in a fresh interpreter rather than in a user's first command.
"""

import ast
import io
import os
import pkgutil
import random
import subprocess
import sys
import tokenize
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import dlpy

PACKAGE_DIR = Path(dlpy.__file__).parent
# The folder that holds the dlpy under test, first on the subprocesses' path, as on this one's.
PYTHONPATH = os.pathsep.join(
    p for p in (str(PACKAGE_DIR.parent), os.environ.get("PYTHONPATH")) if p
)
# __main__ is left out: importing it runs the command line.
MODULES = sorted(
    ["dlpy"]
    + [
        info.name
        for info in pkgutil.walk_packages(dlpy.__path__, "dlpy.", onerror=lambda name: None)
        if info.name.rpartition(".")[2] != "__main__"
    ]
)

# Imports the modules named on its command line in that order; on the first failure it prints
# "module: the error's last line" and exits 1.
IMPORT_IN_ORDER = """
import importlib, sys, traceback
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except BaseException as error:
        line = traceback.format_exception_only(type(error), error)[-1].strip()
        sys.exit(f"{name}: {line}")
"""

# Imports each module named on its command line alone, in a child forked from an interpreter that
# has imported torch and nothing of dlpy: each child pays dlpy's imports, not torch's 2-3 s again
# (one fresh interpreter per module made this the suite's slowest test). Prints "module: the
# error's last line" for each failure; exits 1 if there was one.
IMPORT_EACH_ALONE = """
import importlib, os, sys, traceback
import torch  # noqa: F401  (third-party, loaded once before the forks)
assert not [m for m in sys.modules if m.partition(".")[0] == "dlpy"], "dlpy imported too early"
failed = False
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException as error:
            line = traceback.format_exception_only(type(error), error)[-1].strip()
            os.write(2, f"{name}: {line}\\n".encode())
            os._exit(1)
        os._exit(0)
    failed |= os.waitpid(pid, 0)[1] != 0
sys.exit(1 if failed else 0)
"""


def python(*args):
    """Run `python *args` in a fresh interpreter: (exit status, its stderr's lines)."""
    proc = subprocess.run(
        [sys.executable, *args],
        env={**os.environ, "PYTHONPATH": PYTHONPATH},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc.returncode, proc.stderr.strip().splitlines()


def in_parallel(function, items):
    """function(item) for each item, two subprocesses at a time: the machine may have two cores."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(function, items))


def test_the_modules_are_found():
    assert {"dlpy", "dlpy.cli", "dlpy.train", "dlpy.models.resnet"} <= set(MODULES)


@pytest.mark.slow
def test_every_module_imports_alone_in_a_fresh_interpreter():
    halves = [MODULES[0::2], MODULES[1::2]]
    results = in_parallel(lambda names: python("-c", IMPORT_EACH_ALONE, *names), halves)
    failures = [line for status, lines in results if status for line in lines]
    assert all(status == 0 for status, _ in results), "modules that do not import alone:\n" + (
        "\n".join(failures)
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the check forks")
def test_the_import_check_catches_a_module_that_imports_only_after_another(tmp_path):
    # a package whose module b needs a.X, which only exists once a has been imported
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("import sys\nsys.modules['pkg'].X = 1\n")
    (tmp_path / "pkg" / "b.py").write_text("import pkg\nY = pkg.X\n")
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH_ALONE, "pkg.a", "pkg.b"],
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("pkg.b: AttributeError")


@pytest.mark.slow
def test_all_modules_import_in_random_orders_in_one_interpreter():
    orders = [random.Random(seed).sample(MODULES, len(MODULES)) for seed in range(3)]
    results = in_parallel(lambda order: python("-c", IMPORT_IN_ORDER, *order), orders)
    failures = [
        f"seed {seed}: {lines[-1]}" for seed, (status, lines) in enumerate(results) if status
    ]
    assert not failures, "imports that fail in some order:\n" + "\n".join(failures)


# -- imports of dlpy inside functions -------------------------------------------------------------


def imports_dlpy(node):
    """Whether an import statement imports a dlpy module (absolute or relative)."""
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or node.module.partition(".")[0] == "dlpy"
    if isinstance(node, ast.Import):
        return any(alias.name.partition(".")[0] == "dlpy" for alias in node.names)
    return False


def unexplained_imports(source):
    """Line numbers of the dlpy imports inside functions with no comment on the statement's lines
    or on a comment line just above it."""
    comments = {
        token.start[0]
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }
    lines = source.splitlines()
    found = set()
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if not imports_dlpy(node):
                continue
            own = comments.intersection(range(node.lineno, node.end_lineno + 1))
            above = node.lineno >= 2 and lines[node.lineno - 2].lstrip().startswith("#")
            if not own and not above:
                found.add(node.lineno)
    return found


def test_the_nested_import_check_finds_what_it_should():
    source = (
        "def f():\n"
        "    from dlpy import io\n"
        "    from dlpy import cli  # heavy: kept off the start-up path\n"
        "    # optional dependency\n"
        "    import dlpy.plots\n"
        "    x = 1  # a comment on code, not on the import below\n"
        "    from .. import train\n"
        "    import json\n"
    )
    assert unexplained_imports(source) == {2, 7}


def test_imports_of_dlpy_inside_functions_say_why():
    """An import inside a function hides a dependency; one that is there for a reason says so:
    `# heavy: kept off the start-up path`, `# optional dependency`, `# cycle: ...`."""
    offenders = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        lines = path.read_text().splitlines()
        for line in sorted(unexplained_imports(path.read_text())):
            where = path.relative_to(PACKAGE_DIR.parent)
            offenders.append(f"{where}:{line}: {lines[line - 1].strip()}")
    assert not offenders, (
        f"{len(offenders)} imports of dlpy inside functions without a comment saying why:\n"
        + "\n".join(offenders)
    )
