"""`bf16: auto`: bf16 where the hardware computes it natively, float32 where it would be emulated.

On a CPU without AVX512-BF16 or AMX (most laptops, many cloud CPUs: AVX2 only) torch emulates bf16 autocast,
several times slower than float32 (docs/timing.md); a CUDA GPU of the Ampere generation or newer computes it
natively. `auto` resolves once, when params.yaml is read, to what this machine does natively; true and false
force it. The resolved value is what the stages use and what the results record.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16 arithmetic
# oneDNN's instruction-set caps below its first bf16 one (ONEDNN_MAX_CPU_ISA); ATen's (ATEN_CPU_CAPABILITY) likewise
ONEDNN_BELOW_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")
ATEN_BELOW_BF16 = ("default", "avx2")
# what a process sees on a CPU with AVX2 only (most laptops), set on a CPU with more: it reproduces the slowdown of
# emulated bf16 measured on a real AVX2-only machine (docs/timing.md); the benchmarks run under it with --isa avx2
AVX2_ONLY = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo is not there."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


def native_bf16_cpu(flags: set[str] | None = None, environ=os.environ) -> bool:
    """Whether the CPU computes bf16 natively, and no instruction-set cap of the process hides it."""
    flags = cpu_flags() if flags is None else flags
    if environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in ONEDNN_BELOW_BF16:
        return False
    if environ.get("ATEN_CPU_CAPABILITY", "").lower() in ATEN_BELOW_BF16:
        return False
    return any(flag in flags for flag in BF16_CPU_FLAGS)


GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd")  # NVIDIA's driver; AMD's ROCm (torch.cuda there too)


def gpu_may_be_visible() -> bool:
    """Whether torch may see a GPU, decided without importing torch when no GPU driver is there: reading params and
    the check stage stay light (importing torch costs about a second a process)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return "torch" in sys.modules or any(Path(path).exists() for path in GPU_DEVICE_FILES)


def native_bf16() -> bool:
    """Whether the device the stages run on computes bf16 natively: the CUDA GPU when there is one, else the CPU."""
    if gpu_may_be_visible():
        import torch

        if torch.cuda.is_available():
            return torch.cuda.is_bf16_supported()
    return native_bf16_cpu()


def resolve_bf16(setting: bool | str) -> bool:
    """true/false as given; `auto` -> native_bf16()."""
    return native_bf16() if setting == "auto" else bool(setting)
