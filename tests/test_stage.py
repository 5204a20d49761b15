"""A stage runs as one process: never twice at once, never outliving `dvc`, a sentence instead of a traceback;
and a training stage's checkpoints are resumed only by the same code."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.processes import alive
from tests.support.repo import commit_all, run
from vdr.stage import parse_args
from vdr.training.trainer import resumable

HOLD = "import sys, time\nfrom vdr.stage import stage_process\nwith stage_process(sys.argv[1]):\n    time.sleep(60)\n"


def start_holding(cwd, name, env):
    process = subprocess.Popen([sys.executable, "-c", HOLD, name], cwd=cwd, env=env, stderr=subprocess.PIPE, text=True)
    lock = cwd / ".dvc" / "tmp" / f"stage-{name}.lock"
    deadline = time.monotonic() + 30
    while not (lock.exists() and lock.read_text().strip() == str(process.pid)):
        assert process.poll() is None and time.monotonic() < deadline, "the holder did not start"
        time.sleep(0.1)
    return process


def test_a_second_copy_of_a_running_stage_stops_naming_the_first(tmp_path, stage_env):
    (tmp_path / ".dvc").mkdir()
    first = start_holding(tmp_path, "train_embedder", stage_env)
    try:
        second = subprocess.run(
            [sys.executable, "-c", HOLD, "train_embedder"], cwd=tmp_path, env=stage_env, capture_output=True, text=True
        )
        assert second.returncode != 0
        assert f"stage train_embedder is already running here (pid {first.pid}" in second.stderr
        other = start_holding(tmp_path, "train_reranker", stage_env)  # another stage is not blocked
        other.kill()
    finally:
        first.kill()
        first.wait()
    again = start_holding(tmp_path, "train_embedder", stage_env)  # the kernel released the lock with the process
    again.kill()


@pytest.mark.e2e  # dvc repro
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_a_stage_does_not_outlive_a_killed_dvc(tmp_path, stage_env, shell):
    """`dvc repro` killed with SIGKILL: its running stage ends, whether dvc's `$SHELL -c` replaced itself with the
    command (bash) or stayed between them (dash, Debian's /bin/sh, which dvc uses when SHELL is unset)."""
    if not Path(shell).exists():
        pytest.skip(f"no {shell} here")
    stage_env = dict(stage_env, SHELL=shell)
    (tmp_path / "slow.py").write_text(
        "import os, time\nfrom vdr.stage import stage_process\nwith stage_process('slow'):\n"
        "    open('pid', 'w').write(str(os.getpid()))\n    time.sleep(120)\n"
    )
    (tmp_path / "dvc.yaml").write_text("stages:\n  slow:\n    cmd: python slow.py\n    outs:\n      - never\n")
    run(["git", "init", "-q"], tmp_path, stage_env)
    run(["dvc", "init", "-q"], tmp_path, stage_env)
    commit_all(tmp_path, stage_env, "slow stage")
    dvc = subprocess.Popen(
        ["dvc", "repro"], cwd=tmp_path, env=stage_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "pid").exists() or not (tmp_path / "pid").read_text():
        assert dvc.poll() is None and time.monotonic() < deadline, "the stage did not start"
        time.sleep(0.2)
    stage_pid = int((tmp_path / "pid").read_text())
    dvc.send_signal(signal.SIGKILL)
    dvc.wait()
    deadline = time.monotonic() + 10
    while alive(stage_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(stage_pid), "the stage outlived dvc"


def test_bad_input_is_a_sentence_not_a_traceback(tmp_path, stage_env):
    code = (
        "from vdr.stage import stage_process\nwith stage_process('fetch'):\n    raise ValueError('fetch.seed: bad')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=stage_env, capture_output=True, text=True)
    assert result.returncode == 1 and "fetch: fetch.seed: bad" in result.stderr and "Traceback" not in result.stderr
    env = dict(stage_env, VDR_TRACEBACK="1")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert "Traceback" in result.stderr


def test_stage_options_come_from_the_dataclass():
    @dataclass(frozen=True)
    class Paths:
        params: Path = Path("params.yaml")
        section: str = field(default="mine", metadata={"choices": ["mine", "mine_reranker"]})
        workers: int | None = None

    parsed = parse_args(Paths, None, ["--section", "mine_reranker", "--workers", "3"])
    assert parsed == Paths(params=Path("params.yaml"), section="mine_reranker", workers=3)
    with pytest.raises(SystemExit):
        parse_args(Paths, None, ["--section", "nope"])


def test_a_code_change_discards_the_checkpoints(tmp_path, monkeypatch):
    """The resume fingerprint covers the stage script, every project module it imports and requirements.lock, as
    its dvc.yaml deps do."""
    (tmp_path / "stages").mkdir()
    (tmp_path / "vdr").mkdir()
    (tmp_path / "vdr" / "__init__.py").write_text("")
    (tmp_path / "vdr" / "helper.py").write_text("LEARNING = 1\n")
    (tmp_path / "stages" / "train.py").write_text("from vdr.helper import LEARNING\n")
    (tmp_path / "requirements.lock").write_text("torch==2.14.1\n")
    (tmp_path / "data.parquet").write_text("rows")
    monkeypatch.chdir(tmp_path)

    def checkpoints():
        return resumable(Path("ckpt"), Path("live"), {"train": {"lr": 1}}, [Path("data.parquet")], "stages/train.py")

    checkpoints()
    (tmp_path / "ckpt" / "checkpoint-2").mkdir()
    (tmp_path / "ckpt" / "checkpoint-2" / "complete").write_text("step 2\n")
    assert checkpoints().resume.endswith("checkpoint-2")  # same code, params and data: resumed
    (tmp_path / "vdr" / "helper.py").write_text("LEARNING = 2\n")  # a library change the stage imports
    assert checkpoints().resume is None
    assert not (tmp_path / "ckpt" / "checkpoint-2").exists()
    checkpoints()
    (tmp_path / "ckpt" / "checkpoint-4").mkdir()
    (tmp_path / "ckpt" / "checkpoint-4" / "complete").write_text("step 4\n")
    assert checkpoints().resume.endswith("checkpoint-4")
    (tmp_path / "requirements.lock").write_text("torch==2.15.0\n")  # a library upgrade
    assert checkpoints().resume is None
    assert not (tmp_path / "ckpt" / "checkpoint-4").exists()


def test_a_stage_run_by_hand_survives_its_shell(tmp_path, stage_env):
    """Outside DVC (no DVC_STAGE) a stage is the user's process: `nohup python stages/x.py &` outlives the shell."""
    (tmp_path / "hold.py").write_text(
        "import os, time\nfrom vdr.stage import stage_process\nwith stage_process('by_hand'):\n"
        "    open('pid', 'w').write(str(os.getpid()))\n    time.sleep(60)\n"
    )
    hold = str(tmp_path / "hold.py")
    spawn = f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, {hold!r}])\ntime.sleep(60)"
    env = {k: v for k, v in stage_env.items() if k != "DVC_STAGE"}
    parent = subprocess.Popen([sys.executable, "-c", spawn], cwd=tmp_path, env=env)
    deadline = time.monotonic() + 30
    while not (tmp_path / "pid").exists() or not (tmp_path / "pid").read_text():
        assert time.monotonic() < deadline, "the stage did not start"
        time.sleep(0.1)
    stage_pid = int((tmp_path / "pid").read_text())
    parent.kill()
    parent.wait()
    time.sleep(1)
    try:
        assert alive(stage_pid), "a stage started by hand ended with its parent"
    finally:
        os.kill(stage_pid, signal.SIGKILL)


def test_torch_keeps_within_the_environments_thread_limit(tmp_path, stage_env):
    """OMP_THREAD_LIMIT below torch's thread count made bf16 training NaN from the first step; a stage obeys it."""
    script = tmp_path / "threads.py"
    script.write_text(
        "import torch\nfrom vdr.stage import stage_process\ntorch.set_num_threads(2)\n"
        "with stage_process('threads'):\n    print('threads', torch.get_num_threads())\n"
    )
    limited = subprocess.run(
        [sys.executable, str(script)],
        env={**stage_env, "OMP_THREAD_LIMIT": "1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert limited.returncode == 0, limited.stderr
    assert "threads 1" in limited.stdout and "OMP_THREAD_LIMIT=1 is set" in limited.stdout
    free = subprocess.run([sys.executable, str(script)], env=stage_env, cwd=tmp_path, capture_output=True, text=True)
    assert "threads 2" in free.stdout
