"""benchmarks/flops.py: the CPU flags it reads and the table it prints (no training, no timing)."""

from benchmarks.flops import Measured, cpu_flags, table

CPUINFO = """processor\t: 0
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 avx512vl
processor\t: 1
flags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 avx512vl amx_tile
"""


def test_the_flags_are_read_from_the_first_processor_whole_words_only():
    flags = cpu_flags(CPUINFO)
    assert flags["avx512f"] and flags["avx512_bf16"] and flags["avx2"]
    assert not flags["amx_tile"] and not flags["amx_bf16"]  # the second processor's line is not read
    assert not cpu_flags("no flags line")["avx512f"]


def test_the_table_divides_the_counted_flops_by_the_best_times_and_compares_with_the_dtype_peak():
    run = Measured(
        name="train_reranker bf16 on",
        dtype="bf16",
        flops=[100e9, 300e9],
        seconds=[1.0, 3.0],
        loop_seconds=[1.5, 3.5],
        all_seconds=[1.0, 3.0, 2.0, 4.0, 9.0],
        top_ops=[],
    )
    lines = table([run], {"fp32": 50.0, "bf16": 400.0}).splitlines()
    assert lines[0].split()[:3] == ["stage", "dtype", "GFLOP/step"]
    assert lines[1].split()[-8:] == ["bf16", "200.0", "2.00", "3.00", "2.50", "100.0", "400", "25.0%"]
