"""Which project files a stage's code runs: its script and every `vdr` module it imports, transitively.

    python -m vdr.deps stages/evaluate.py     # prints the files, one per line

A stage's result depends on all of them, so each stage's deps in dvc.yaml list exactly these files
(tests/test_provenance.py keeps the list exact), and a training stage's resume fingerprint hashes the
same files (vdr/training/checkpoints.py): a change to any of them reruns the stage and discards its checkpoints.
Imports are read from the source with `ast`, including imports inside functions, so nothing has to
run to find them.
"""

from __future__ import annotations

import ast
import re
import shlex
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


PACKAGE = "vdr"


LOCK_FILE = "requirements.lock"  # the pinned libraries and base-model wheel every result depends on


def imported_names(path: Path) -> set[str]:
    """Dotted names of every module `path` imports (`import a.b`, `from a.b import c` gives a.b and a.b.c)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def module_file(name: str, root: Path = REPO) -> Path | None:
    """The file of a project module (vdr.x -> vdr/x.py or vdr/x/__init__.py); None for any other module."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    for candidate in (root.joinpath(*parts).with_suffix(".py"), root.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def code_files(script: str | Path, root: Path = REPO) -> list[str]:
    """The script and every project module it imports, transitively (package __init__ files included),
    as sorted paths relative to `root`."""
    root = Path(root)
    start = (root / script).resolve()
    seen, pending = {start}, [start]
    while pending:
        for name in sorted(imported_names(pending.pop())):
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # importing vdr.x runs vdr/__init__.py too
                found = module_file(".".join(parts[:depth]), root)
                if found is not None and found.resolve() not in seen:
                    seen.add(found.resolve())
                    pending.append(found.resolve())
    return sorted(path.relative_to(root.resolve()).as_posix() for path in seen)


def stage_script(command: str) -> str:
    """The one stage script a dvc.yaml `cmd` runs (`python stages/mine.py --section ...` -> stages/mine.py)."""
    scripts = [word for word in shlex.split(command) if word.startswith("stages/") and word.endswith(".py")]
    if len(scripts) != 1:
        raise ValueError(f"dvc.yaml: cmd should run one stage script: {command}")
    return scripts[0]


def with_code_deps(dvc_yaml: str, root: Path = REPO) -> str:
    """dvc.yaml's text with each stage's `vdr/` deps replaced by the modules its script imports, listed right
    after the script; every other line (comments, data deps, params, outs) is kept as it is."""
    stages = yaml.safe_load(dvc_yaml)["stages"]
    lines, out, stage, in_deps = dvc_yaml.splitlines(keepends=True), [], None, False
    for line in lines:
        name = re.match(r"^  (\w+):", line)
        if name and name.group(1) in stages:
            stage, in_deps = name.group(1), False
        elif re.match(r"^    deps:", line):
            in_deps = True
        elif re.match(r"^    \w", line):
            in_deps = False
        if in_deps and re.match(rf"^      - {PACKAGE}/", line):
            continue  # rewritten below, after the script
        out.append(line)
        if in_deps and stage and re.match(r"^      - stages/", line):
            modules = [f for f in code_files(stage_script(stages[stage]["cmd"]), root) if f.startswith(f"{PACKAGE}/")]
            out.extend(f"      - {module}\n" for module in modules)
    return "".join(out)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        path = REPO / "dvc.yaml"
        path.write_text(with_code_deps(path.read_text()))
    else:
        print("\n".join(code_files(sys.argv[1])))
