"""Every stage's deps in dvc.yaml cover its script and every project module it imports, transitively, and
requirements.lock; nothing else of the project's code. A code change then reruns exactly the stages it affects."""

import shlex

import pytest
import yaml

from tests.support.repo import REPO
from vdr.deps import LOCK_FILE, code_files

STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def stage_script(stage: dict) -> str:
    scripts = [word for word in shlex.split(stage["cmd"]) if word.startswith("stages/") and word.endswith(".py")]
    assert len(scripts) == 1, f"cmd should run one stage script: {stage['cmd']}"
    return scripts[0]


def declared(stage: dict) -> set[str]:
    return {next(iter(dep)) if isinstance(dep, dict) else dep for dep in stage.get("deps", [])}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_deps_are_exactly_the_code_the_stage_runs(name):
    stage = STAGES[name]
    code = set(code_files(stage_script(stage)))
    deps = declared(stage)
    missing = sorted(code - deps)
    assert not missing, f"dvc.yaml stage '{name}' runs {missing} but does not list it in deps; add it"
    extra = sorted(d for d in deps - code if d.endswith(".py"))
    assert not extra, f"dvc.yaml stage '{name}' lists {extra} in deps, which its code never imports; remove it"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_stage_depends_on_the_pinned_libraries(name):
    assert LOCK_FILE in declared(STAGES[name]), (
        f"dvc.yaml stage '{name}': add {LOCK_FILE} to deps (a library upgrade can change its result)"
    )


def test_imports_are_followed_transitively_and_inside_functions(tmp_path):
    (tmp_path / "stages").mkdir()
    (tmp_path / "vdr").mkdir()
    (tmp_path / "vdr" / "__init__.py").write_text("")
    (tmp_path / "vdr" / "a.py").write_text("import json\nfrom vdr import b\n")
    (tmp_path / "vdr" / "b.py").write_text("def f():\n    from vdr.c import g\n")
    (tmp_path / "vdr" / "c.py").write_text("g = 1\n")
    (tmp_path / "vdr" / "unused.py").write_text("")
    (tmp_path / "stages" / "s.py").write_text("import os\nfrom vdr.a import x\n")
    assert code_files("stages/s.py", tmp_path) == [
        "stages/s.py",
        "vdr/__init__.py",
        "vdr/a.py",
        "vdr/b.py",
        "vdr/c.py",
    ]


def test_a_missing_module_is_named(tmp_path, monkeypatch):
    """The check above fails, naming stage and file, when a dependency is left out (as before this test existed)."""
    stage = {"cmd": "python stages/evaluate.py", "deps": ["stages/evaluate.py", LOCK_FILE]}
    monkeypatch.setitem(STAGES, "evaluate", stage)
    with pytest.raises(
        AssertionError, match=r"stage 'evaluate' runs \[.*'vdr/evaluation/metrics.py'.*\] but does not list it"
    ):
        test_deps_are_exactly_the_code_the_stage_runs("evaluate")
