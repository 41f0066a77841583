"""How readable dlpy's code is, in numbers: long lines, the longest module and function, trainer.py.

    python scripts/code_stats.py [PACKAGE_DIR] [--limit 100]

Prints lines over the limit (count and share), the longest line, the longest module, the longest
function (by source lines, decorators included), the number of modules over 300 lines and functions
over 50, and the length of trainer.py. Run it before and after a refactor to compare.
"""

import argparse
import ast
from pathlib import Path

MODULE_LIMIT = 300
FUNCTION_LIMIT = 50


def functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Every function and method of a module, nested ones too."""
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    return [node for node in ast.walk(tree) if isinstance(node, kinds)]


def length(node: ast.AST) -> int:
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    return node.end_lineno - first + 1


def stats(root: Path, limit: int) -> dict:
    modules = {}
    long_lines = []
    total_lines = 0
    longest_line = (0, "")
    funcs = []
    for path in sorted(root.rglob("*.py")):
        name = str(path.relative_to(root.parent))
        lines = path.read_text().splitlines()
        modules[name] = len(lines)
        total_lines += len(lines)
        for number, line in enumerate(lines, 1):
            if len(line) > limit:
                long_lines.append(f"{name}:{number}")
            if len(line) > longest_line[0]:
                longest_line = (len(line), f"{name}:{number}")
        for func in functions(ast.parse("\n".join(lines))):
            funcs.append((length(func), f"{name}:{func.lineno} {func.name}"))
    funcs.sort(reverse=True)
    longest_module = max(modules.items(), key=lambda item: item[1])
    return {
        "lines": total_lines,
        "long_lines": len(long_lines),
        "long_share": len(long_lines) / max(1, total_lines),
        "longest_line": longest_line,
        "longest_module": longest_module,
        "modules_over": sum(n > MODULE_LIMIT for n in modules.values()),
        "longest_function": funcs[0] if funcs else (0, ""),
        "functions_over": sum(n > FUNCTION_LIMIT for n, _ in funcs),
        "trainer": modules.get(f"{root.name}/trainer.py", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=str(Path(__file__).parents[1] / "dlpy"))
    parser.add_argument("--limit", type=int, default=100, help="line length (default 100)")
    args = parser.parse_args()
    s = stats(Path(args.root).resolve(), args.limit)
    print(f"lines of code:          {s['lines']}")
    print(f"lines over {args.limit}:          {s['long_lines']} ({s['long_share']:.1%})")
    print(f"longest line:           {s['longest_line'][0]} characters ({s['longest_line'][1]})")
    print(f"longest module:         {s['longest_module'][1]} lines ({s['longest_module'][0]})")
    print(f"modules over {MODULE_LIMIT}:      {s['modules_over']}")
    print(f"longest function:       {s['longest_function'][0]} lines ({s['longest_function'][1]})")
    print(f"functions over {FUNCTION_LIMIT}:     {s['functions_over']}")
    print(f"trainer.py:             {s['trainer']} lines")


if __name__ == "__main__":
    main()
