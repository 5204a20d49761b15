"""benchmarks/pipeline.py: the side-by-side table of a run against a reference revision."""

from benchmarks.pipeline import table


def test_the_table_gives_each_stage_and_the_total_with_the_ratio_to_the_reference():
    current = {"render": (30.0, 0.5), "generate": (2.0, 0.1), "train": (100.0, 2.0)}
    reference = {"render": (60.0, 0.9), "train": (200.0, 3.0)}
    rows = {line.split()[0]: line.split()[1:] for line in table(current, reference).splitlines()[1:-1]}
    assert rows["render"] == ["30.0", "0.50", "60.0", "0.90", "0.50"]
    assert rows["generate"] == ["2.0", "0.10", "-", "-", "-"]  # a stage the reference does not have
    assert rows["total"] == ["132.0", "2.00", "260.0", "3.00", "0.51"]
    assert list(rows) == ["render", "train", "generate", "total"]  # the reference's order first
    assert "ref wall s" not in table(current, None)
