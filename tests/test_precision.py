"""`bf16: auto` resolves to what the machine computes natively, on both kinds of CPU (simulated here by their
flags and by the instruction-set caps a process can set), and on a GPU; forcing it where it is emulated warns."""

import pytest

import stages.check
import vdr.config.precision as precision
from vdr.config.evaluation import Encode
from vdr.config.precision import native_bf16_cpu, resolve_bf16
from vdr.config.training import Lora, TrainReranker

AVX2_LAPTOP = {"fpu", "sse4_2", "avx", "avx2", "fma"}
SAPPHIRE_RAPIDS = AVX2_LAPTOP | {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}


@pytest.mark.parametrize(
    "flags, environ, native",
    [
        (AVX2_LAPTOP, {}, False),
        (AVX2_LAPTOP | {"avx512f"}, {}, False),  # AVX-512 without its bf16 extension
        (SAPPHIRE_RAPIDS, {}, True),
        (AVX2_LAPTOP | {"avx512_bf16"}, {}, True),
        (AVX2_LAPTOP | {"amx_bf16"}, {}, True),
        (SAPPHIRE_RAPIDS, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, False),  # a process capped below bf16
        (SAPPHIRE_RAPIDS, {"ONEDNN_MAX_CPU_ISA": "avx512_core"}, False),
        (SAPPHIRE_RAPIDS, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, True),
        (SAPPHIRE_RAPIDS, {"ATEN_CPU_CAPABILITY": "avx2"}, False),
        (SAPPHIRE_RAPIDS, {"ATEN_CPU_CAPABILITY": "avx512"}, True),
        (set(), {}, False),  # no /proc/cpuinfo (not Linux): float32
    ],
)
def test_native_bf16_on_a_cpu(flags, environ, native):
    assert native_bf16_cpu(flags, environ) is native


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu avx2\n")
    assert precision.cpu_flags(cpuinfo) == {"fpu", "avx2", "amx_bf16"}
    assert precision.cpu_flags(tmp_path / "missing") == set()


@pytest.mark.parametrize("native", [True, False])
def test_auto_resolves_when_params_are_read_and_forcing_either_way_holds(monkeypatch, native):
    monkeypatch.setattr(precision, "native_bf16", lambda: native)
    assert Encode(bf16="auto").bf16 is native
    assert Encode(bf16=True).bf16 is True and Encode(bf16=False).bf16 is False
    training = dict(epochs=1, batch_size=2, learning_rate=1e-4, warmup_ratio=0.1, seed=1)
    reranker = dict(training, max_train_queries=None, negatives_per_positive=1, max_length=None)
    assert TrainReranker(**reranker, bf16="auto").bf16 is native
    assert TrainReranker(**reranker, bf16=True, lora=Lora(r=2, alpha=4)).bf16 is True
    assert resolve_bf16("auto") is native


def test_a_gpu_decides_when_there_is_one(monkeypatch):
    import torch

    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: False)
    monkeypatch.setattr(precision, "gpu_may_be_visible", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert precision.native_bf16() is True
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)  # a pre-Ampere GPU
    assert precision.native_bf16() is False
    monkeypatch.setattr(precision, "gpu_may_be_visible", lambda: False)  # no GPU: torch is not asked
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: True)
    assert precision.native_bf16() is True


def test_the_check_stage_names_every_bf16_key_forced_where_it_is_emulated(monkeypatch):
    raw = {"encode": {"bf16": True}, "train_embedder": {"bf16": "auto"}, "train_reranker": {"bf16": True}}
    monkeypatch.setattr(stages.check, "native_bf16", lambda: False)
    assert stages.check.emulated_bf16(raw) == ["encode.bf16", "train_reranker.bf16"]
    assert stages.check.emulated_bf16({"encode": {"bf16": "auto"}, "train_multivector": None}) == []
    monkeypatch.setattr(stages.check, "native_bf16", lambda: True)
    assert stages.check.emulated_bf16(raw) == []
