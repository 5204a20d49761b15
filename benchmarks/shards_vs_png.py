"""The same rendered pages as Parquet shards vs as loose PNG files: time `dvc add` + `dvc push`.

    python benchmarks/shards_vs_png.py                 # 1000 pages, shards of 500 rows
    python benchmarks/shards_vs_png.py --pages 300 --shard-size 100
    python benchmarks/shards_vs_png.py --s3             # also to an S3 API (moto on 127.0.0.1)

Renders the pages once (docstrings of fetch.packages in params.yaml, typeset and rasterised by
vdr.data.pages), writes the same PNG bytes both ways, then for each layout, in a fresh git + DVC
repository with its own local-directory remote, times `dvc add pages` and `dvc push` as a user
runs them (each a new `dvc` process, start-up included). Prints both totals and the ratio.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from vdr.config.params import load_params
from vdr.data.corpus import stable_rank
from vdr.data.docstrings import docstring_entries
from vdr.data.pages import render_all
from vdr.io.tables import write_shards

SCHEMA = pa.schema([("id", pa.string()), ("image", pa.binary()), ("text", pa.string())])


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def add_and_push(root: Path, remote: list[str], write_pages) -> tuple[float, float, int]:
    """A fresh repo whose default remote is `remote` (`dvc remote add` arguments); write the pages;
    time `dvc add` and `dvc push`."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["dvc", "remote", "add", "-d", "bench", *remote[:1]], cwd=repo, check=True, capture_output=True)
    if len(remote) > 1:
        subprocess.run(
            ["dvc", "remote", "modify", "bench", "endpointurl", remote[1]], cwd=repo, check=True, capture_output=True
        )
    write_pages(repo / "pages")
    files = sum(1 for p in (repo / "pages").rglob("*") if p.is_file())
    return timed(["dvc", "add", "pages"], repo), timed(["dvc", "push"], repo), files


def report(title: str, results: dict) -> None:
    print(f"\n{title}")
    print(f"{'layout':<8}{'files':>7}{'dvc add s':>11}{'dvc push s':>12}{'total s':>9}")
    for name, (add, push, files) in results.items():
        print(f"{name:<8}{files:>7}{add:>11.2f}{push:>12.2f}{add + push:>9.2f}")
    shards_total, png_total = (sum(results[n][:2]) for n in ("shards", "png"))
    print(f"loose PNG / shards: {png_total / shards_total:.1f}x slower")


def main(pages: int, shard_size: int, dpi: int, workers: int, s3: bool) -> None:
    # 1. The same pages for both layouts: docstrings as the fetch stage selects them, typeset and rasterised
    fetch = load_params("params.yaml").fetch
    entries, _ = docstring_entries(
        fetch.packages, fetch.min_summary_chars, fetch.max_summary_chars, fetch.min_body_chars, fetch.max_body_chars
    )
    if len(entries) < pages:
        sys.exit(f"--pages {pages}: only {len(entries)} docstrings are available")
    chosen = sorted(entries, key=lambda e: stable_rank(e.doc_id, fetch.seed))[:pages]
    started = time.perf_counter()
    documents = pa.table(
        {"id": [e.doc_id for e in chosen], "title": [e.title for e in chosen], "body": [e.body for e in chosen]}
    )
    rows = [
        {name: page[name] for name in SCHEMA.names} for page in render_all(documents, dpi, workers, "render")
    ]  # as the render stage does
    megabytes = sum(len(r["image"]) for r in rows) / 1e6
    print(
        f"rendered {len(rows)} pages at {dpi} dpi ({megabytes:.1f} MB of PNG) in {time.perf_counter() - started:.1f} s"
    )

    # 2. Shards vs loose PNG files, each in its own repository and remote
    def as_shards(folder: Path) -> None:
        write_shards(folder, rows, SCHEMA, shard_size)

    def as_png(folder: Path) -> None:
        folder.mkdir()
        for number, row in enumerate(rows):
            (folder / f"{number:05d}.png").write_bytes(row["image"])

    layouts = (("shards", as_shards), ("png", as_png))
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        # 3. A local-directory remote (the project's default)
        local = {
            name: add_and_push(root / "local" / name, [str(root / "local" / name / "remote")], write)
            for name, write in layouts
        }
        report("local-directory remote", local)

        # 4. Optionally an S3 API (moto on 127.0.0.1), where every object is a request
        if s3:
            import boto3
            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
            os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            endpoint = "http://{}:{}".format(*server.get_host_and_port())
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
            remote = {
                name: add_and_push(root / "s3" / name, [f"s3://bench/{name}", endpoint], write)
                for name, write in layouts
            }
            server.stop()
            report("S3 remote (moto on 127.0.0.1)", remote)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--shard-size", type=int, default=500, help="rows per Parquet shard (render.shard_size)")
    parser.add_argument("--dpi", type=int, default=100, help="as render.dpi")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--s3", action="store_true", help="also push to an S3 API served by moto on 127.0.0.1")
    args = parser.parse_args()
    main(args.pages, args.shard_size, args.dpi, args.workers, args.s3)
