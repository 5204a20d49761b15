"""benchmarks/backends.py: its tables, the fp32 check, and the message when its extra packages are missing."""

import importlib.util

import pytest

from benchmarks import backends
from benchmarks.backends import BASELINE, Row, fp32_failures, table


def rows_of(text: str) -> dict[str, list[str]]:
    lines = text.splitlines()[2:]  # below the header and its rule
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return {cell[0]: cell[1:] for cell in cells}


def test_the_embedder_table_puts_torch_first_with_speed_ups_and_ndcg_differences():
    rows = [
        Row("onnxruntime fp32", 30.0, 0.72251, 2e-7),
        Row(BASELINE, 20.0, 0.72250, 0.0),
        Row("openvino int8 static", 50.0, 0.7150, 0.03),
    ]
    text = table(rows, "pages/s", higher_is_faster=True)
    assert text.splitlines()[0] == (
        "| backend | pages/s | speed-up vs torch | NDCG@10 | delta NDCG@10 | max abs diff |"
    )
    found = rows_of(text)
    assert list(found) == [BASELINE, "onnxruntime fp32", "openvino int8 static"]
    assert found[BASELINE] == ["20.0", "1.00x", "0.7225", "+0.0000", "0.0e+00"]
    assert found["onnxruntime fp32"] == ["30.0", "1.50x", "0.7225", "+0.0000", "2.0e-07"]
    assert found["openvino int8 static"] == ["50.0", "2.50x", "0.7150", "-0.0075", "3.0e-02"]


def test_the_reranker_table_counts_fewer_ms_per_query_as_faster():
    rows = [Row(BASELINE, 160.0, 0.7315, 0.0), Row("onnxruntime int8 dynamic", 40.0, 0.7330, 0.4)]
    found = rows_of(table(rows, "ms/query", higher_is_faster=False))
    assert found["onnxruntime int8 dynamic"][:2] == ["40.0", "4.00x"]
    assert found["onnxruntime int8 dynamic"][3] == "+0.0015"


def test_only_an_fp32_backend_further_than_the_tolerance_from_torch_fails():
    rows = [
        Row(BASELINE, 1.0, 0.7000, 0.0),
        Row("onnxruntime fp32", 1.0, 0.7009, 0.0),  # within 0.001
        Row("openvino fp32", 1.0, 0.6980, 0.0),  # 0.002 below
        Row("openvino int8 static", 1.0, 0.6500, 0.0),  # quantized: allowed to differ
    ]
    failures = fp32_failures(rows, "embedder")
    assert len(failures) == 1
    assert failures[0].startswith("embedder: openvino fp32 gives NDCG@10 0.6980, torch fp32 0.7000")


def test_missing_extra_packages_stop_the_script_before_anything_loads_with_how_to_install_them(monkeypatch):
    extras = {"onnx", "onnxscript", "onnxruntime", "openvino", "nncf"}
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in extras else real(name, *a))
    with pytest.raises(SystemExit) as stopped:
        backends.main(["--backends", "torch,ort,ov-int8", "--dataset", "does-not-exist"])
    message = str(stopped.value.code)
    assert "onnx, onnxscript, onnxruntime, openvino, nncf not installed" in message
    assert "separate virtual environment" in message
    assert "pip install -r requirements.lock onnxruntime==" in message
    assert backends.missing_packages(["torch", "torch-bf16"]) == []  # torch alone needs no extra package
