"""Fixtures every test module can ask for; helpers to import live in tests/support."""

import os

# Test processes share the cores (-n auto): each one's torch, and the stages it starts, get their share of threads
# rather than all of them, which would leave threads spinning on a core another process needs.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    share = len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, share)))

import shutil
from pathlib import Path

import pytest
from filelock import FileLock

from tests.support.repo import REPO as REPO
from tests.support.repo import make_tiny_repo, run, stage_environment
from tests.support.tiny_vlm import build
from tests.support.training import EMBEDDER, run_training_stage


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (pyproject.toml): one test process per core the suite may use, at most 4. Most of a test's time is
    single-threaded (starting Python, importing torch, DVC), so two processes on 2 cores finish in about half the
    time; more than 4 would each build the session fixtures their tests need and crowd torch's threads."""
    return max(1, min(len(os.sched_getaffinity(0)), 4))


def pytest_collection_modifyitems(config, items):
    """Files with a test marked `minutes` first, then files with end-to-end tests, then the rest (stable otherwise):
    the long files handed out first, the test processes finish together, the short ones filling the gaps, rather than
    one process running a long file last while the others wait. pytest-xdist hands out files in this order
    (`--no-loadscope-reorder` in pyproject.toml; by default it would reorder them by their number of tests).

    Among the long files, the first to ask for the shared tiny pipeline (`tiny_pipeline`, built once) leads, and the
    others that ask for it go last: they start once it is built, rather than a test process waiting for it idle."""
    minutes = {item.path for item in items if item.get_closest_marker("minutes")}
    e2e = {item.path for item in items if item.get_closest_marker("e2e")}
    readers = [item.path for item in items if item.path in minutes and "tiny_pipeline" in item.fixturenames]
    waits = set(readers) - set(readers[:1])  # every reader but the first
    items.sort(key=lambda item: (item.path not in minutes, item.path in waits, item.path not in e2e))


@pytest.fixture(autouse=True, scope="session")
def _folder_fingerprints_apart(tmp_path_factory):
    """The documents folder's hash cache (vdr/data/folder.py) goes to a throwaway folder, not the user's cache."""
    os.environ.setdefault("VDR_FINGERPRINT_CACHE", str(tmp_path_factory.mktemp("fingerprint-cache")))


@pytest.fixture
def stage_env():
    return stage_environment()


@pytest.fixture(scope="session")
def tiny_vlms(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny random Qwen3-VL embedder and reranker (tests/support/tiny_vlm.py), built once per test run and shared
    by the test processes (built_once below): tests only read them."""
    _, folders = built_once(tmp_path_factory, "tiny_vlm", lambda folder: "\n".join(map(str, build(folder))))
    embedder, reranker = folders.splitlines()
    return Path(embedder), Path(reranker)


@pytest.fixture(scope="session")
def tiny_chat_model(tiny_vlms) -> str:
    """The random Qwen3VLForConditionalGeneration with its processor that the tiny reranker is built on, as on the
    Hub: a chat model for generating queries."""
    return str(tiny_vlms[1].parent / "backbone-lm")


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


# Built once per test run and shared by the test processes, because each costs minutes on 2 cores. Tests only read
# them; a test that changes one works on a copy (tests/support/repo.py copy_repo).


def built_once(tmp_path_factory, name: str, build) -> tuple:
    """(folder, output) of build(folder), which fills the empty folder and returns its output, once per test run:
    the first test process to ask builds it under a lock, in the folder the processes share, and the others wait
    for it instead of building their own. Tests only read what it built (one that changes it works on a copy)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # pytest-of-<user>/pytest-<n>: the run's folder, above each process's own
    folder, output = shared / name, shared / f"{name}.out"
    with FileLock(shared / f"{name}.lock"):
        if not output.exists():
            if folder.exists():
                shutil.rmtree(folder)  # a build that failed part way
            folder.mkdir()
            output.write_text(build(folder))
    return folder, output.read_text()


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> tuple:
    """The tiny repository (tests/support/repo.py TINY) after one `dvc repro` of the whole pipeline, and its output."""

    def build(folder):
        env = stage_environment()
        return run(["dvc", "repro"], make_tiny_repo(folder, env), env)

    return built_once(tmp_path_factory, "tiny_pipeline", build)


@pytest.fixture(scope="session")
def embedder_on_two_processes(tmp_path_factory) -> tuple:
    """The folder where train_embedder trained on 2 CPU processes under torchrun, and the stage's output."""

    def build(folder):
        return run_training_stage(folder, "train_embedder", EMBEDDER | {"num_processes": 2})

    return built_once(tmp_path_factory, "embedder_on_two_processes", build)
