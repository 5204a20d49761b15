"""benchmarks/pipeline.py: the side-by-side table of a run against a reference revision."""

import pytest
import yaml

from benchmarks.pipeline import INSTRUCTION_SETS, override_params, overrides_for, table
from vdr.config.precision import native_bf16_cpu


def test_the_table_gives_each_stage_and_the_total_with_the_ratio_to_the_reference():
    current = {"render": (30.0, 0.5), "generate": (2.0, 0.1), "train": (100.0, 2.0)}
    reference = {"render": (60.0, 0.9), "train": (200.0, 3.0)}
    rows = {line.split()[0]: line.split()[1:] for line in table(current, reference).splitlines()[1:-1]}
    assert rows["render"] == ["30.0", "0.50", "60.0", "0.90", "0.50"]
    assert rows["generate"] == ["2.0", "0.10", "-", "-", "-"]  # a stage the reference does not have
    assert rows["total"] == ["132.0", "2.00", "260.0", "3.00", "0.51"]
    assert list(rows) == ["render", "train", "generate", "total"]  # the reference's order first
    assert "ref wall s" not in table(current, None)


def test_a_reference_override_sets_an_existing_key_and_refuses_an_unknown_one(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("encode:\n  bf16: true\n  batch_size: 64\nevaluate:\n  top_k: 20\n")
    override_params(params, ["encode.bf16=false", "evaluate.top_k=10"])
    expected = {"encode": {"bf16": False, "batch_size": 64}, "evaluate": {"top_k": 10}}
    assert yaml.safe_load(params.read_text()) == expected
    with pytest.raises(SystemExit, match="encode.bf16x=false"):
        override_params(params, ["encode.bf16x=false"])


def test_the_avx2_setting_hides_native_bf16_from_the_stages():
    assert INSTRUCTION_SETS["native"] == {}
    assert not native_bf16_cpu({"avx512_bf16", "amx_bf16"}, environ=INSTRUCTION_SETS["avx2"])


def test_a_reference_override_can_be_limited_to_one_instruction_set():
    given = ["avx2:encode.bf16=false", "evaluate.top_k=10", "native:evaluate.fusion_weight=0.3"]
    assert overrides_for("avx2", given) == ["encode.bf16=false", "evaluate.top_k=10"]
    assert overrides_for("native", given) == ["evaluate.top_k=10", "evaluate.fusion_weight=0.3"]
    assert overrides_for("native", ["generate.base_url=http://host:8000"]) == ["generate.base_url=http://host:8000"]
    with pytest.raises(SystemExit, match="'sse4' is not an instruction set"):
        overrides_for("native", ["sse4:encode.bf16=false"])
