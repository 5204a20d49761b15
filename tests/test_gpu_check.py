"""benchmarks/gpu_check.py has never run on a GPU: every code path of it runs here on the CPU, with the published
architecture scaled down (the same code, a smaller config, two steps), so the first GPU minutes find no bug."""

import subprocess
import sys

import pytest

from tests.support.repo import REPO


@pytest.mark.e2e  # every stage script as a subprocess
@pytest.mark.minutes
def test_every_part_runs_on_the_cpu(stage_env):
    env = dict(stage_env, CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--steps", "2"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout
    for stage in ("check", "fetch", "render", "embed_base", "mine", "train_embedder", "evaluate", "publish"):
        assert f"  {stage} " in out, stage  # part 1: every stage of dvc.yaml
    assert "| finetuned embedder |" in out  # the tiny run's results table
    assert "2. recipe step" in out and "3. the same step with LoRA" in out and "cpu batch 8:" in out  # parts 2-4
    assert "parameters trainable" in out and "vision tower `visual` frozen" in out  # vdr/training/lora.py set it up
    summary = out.strip().splitlines()[-1]
    assert (
        summary.startswith("gpu_check: cpu (scaled-down architecture): ")
        and "projected full recipe: 157 steps" in summary
    )
    assert "LoRA: " in summary and "x full)" in summary


def test_without_a_gpu_it_says_so(stage_env):
    env = dict(stage_env, CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and "no CUDA GPU on this machine" in result.stdout


def test_the_scaled_down_architecture_keeps_the_published_layout():
    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu_check

    full, small = gpu_check.ARCHITECTURE, gpu_check.SMOKE.architecture
    assert full["text_config"]["hidden_size"] == 2048  # the published one is untouched
    text = small["text_config"]
    assert sum(text["rope_parameters"]["mrope_section"]) * 2 == text["head_dim"]
    assert text["rope_parameters"]["mrope_interleaved"] and small["tie_word_embeddings"]
    assert small["vision_config"]["out_hidden_size"] == text["hidden_size"]
    assert max(small["vision_config"]["deepstack_visual_indexes"]) < small["vision_config"]["depth"]
    assert max(gpu_check.SMOKE.matryoshka_dims) <= text["hidden_size"]


def test_a_driver_older_than_cuda_13_needs_is_named(monkeypatch):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu_check

    assert gpu_check.too_old("575.57.08", 580) and not gpu_check.too_old("580.65.06", 580)
    monkeypatch.setenv("PATH", "")  # no nvidia-smi
    assert gpu_check.nvidia_driver() is None
