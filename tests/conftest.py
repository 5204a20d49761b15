import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def stage_environment() -> dict:
    """Environment for running stages and dvc as subprocesses with this interpreter's tools first on PATH."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["HF_HUB_OFFLINE"] = "1"
    env.pop("HF_TOKEN", None)
    return env


@pytest.fixture
def stage_env():
    return stage_environment()


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """An importable package with numpydoc docstrings, in two sub-packages."""
    root = tmp_path / "site" / "toypkg"
    (root / "alpha").mkdir(parents=True)
    (root / "beta").mkdir()
    (root / "tests").mkdir()
    (root / "__init__.py").write_text("")
    (root / "alpha" / "__init__.py").write_text("")
    (root / "beta" / "__init__.py").write_text("")
    body = (
        "\n\n    Longer explanation of what {name} does with the values given to it.\n\n"
        "    Parameters\n    ----------\n    x : int\n        The input value.\n    "
    )
    functions = "\n".join(
        f'def {name}(x, y=1):\n    """Compute the {name} of the input.{body.format(name=name)}"""\n'
        for name in ("add", "mul", "div", "sub")
    )
    (root / "alpha" / "ops.py").write_text(functions)
    (root / "beta" / "more.py").write_text(
        functions.replace("Compute the", "Evaluate the").replace("Longer explanation", "A detailed note")
        + (
            '\ndef _private(x):\n    """Hidden helper function here.\n\n'
            '    With a body long enough to qualify for the corpus otherwise."""\n'
        )
        + (
            '\ndef same_as_body(x):\n    """Repeat this line.\n\n'
            '    Repeat this line. And then much more text, so that it would pass the length filter."""\n'
        )
    )
    (root / "tests" / "test_ops.py").write_text(
        'def test_x():\n    """A test docstring that must be skipped.\n\n'
        '    Body text of a test that is long enough to count."""\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return "toypkg"
