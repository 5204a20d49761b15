"""Hostile cases, each as a user would meet it (docs/reliability.md tables every one, with what it did before):
`vdr-eval` on LoRA-adapter and multi-vector folders, whole and damaged, and on ids, duplicates and query sets it
cannot score; a read-only data folder and a full disk under the stages' outputs (real file systems: a tmpfs mounted
here as root, or a folder without write permission; one case simulated in the writer, so that it runs everywhere);
a stage killed mid-write; the documents folder changing while a run is in progress; a relative fetch.path in DVC's
temporary copy of the repository (`dvc exp run --temp`, `--queue`)."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import vdr.data.sources
from stages import fetch, publish, render
from tests.support.evalsets import MODEL, PAGES, QRELS, QUERIES, beir_set, vdr_eval
from tests.support.filesystems import data_folder, fill, read_only, small_filesystem
from tests.support.images import page_png
from tests.support.repo import REPO, project_repo, ran_stages, read_trec_run, run, stage_environment
from tests.support.stage_inputs import (
    documents_params,
    plant,
    png_documents,
    publish_inputs,
    render_params,
    tree,
    typeset_raw,
)
from vdr.cli import entry
from vdr.config.training import Lora
from vdr.data.folder import folder_fingerprint, require_in_experiment_copy
from vdr.errors import fields_under
from vdr.io.files import atomic_path, write_json
from vdr.models.loading import load_embedder
from vdr.models.multivector import load_multivector
from vdr.models.sources import resolve_model
from vdr.stage import one_sentence_errors
from vdr.training.lora import prepare, write_model


def one_sentence(name: str, run) -> str:
    """What `run()` ends with inside a stage or a command (`name`): one sentence and exit status 1, no traceback."""
    with pytest.raises(SystemExit) as ended:
        with one_sentence_errors(name):
            run()
    message = str(ended.value.code)
    assert message.startswith(f"{name}: ") and message.endswith("\n(the full traceback: VDR_TRACEBACK=1)"), message
    assert message.count("\n") == 1 and "Traceback" not in message
    return message.splitlines()[0]


def vdr_eval_says(monkeypatch, model: str, dataset: Path, out: Path, *extra: str) -> str:
    """The one sentence `vdr-eval --model MODEL --dataset DATASET ...` ends with, as the command runs."""
    argv = ["vdr-eval", "--model", model, "--dataset", str(dataset), "--output", str(out / "m.json"), *extra]
    monkeypatch.setattr(sys, "argv", argv)
    return one_sentence("vdr-eval", entry)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("set") / "set"
    corpus = {"id": list(PAGES), "text": list(PAGES.values())}
    return beir_set(folder, corpus, {"id": list(QUERIES), "text": list(QUERIES.values())}, QRELS)


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    """MiniLM saved as a LoRA adapter (lora.merge: false) whose update is not zero, and the scores the model had in
    memory before it was saved: {query id: {page id: cosine}}."""
    model = load_embedder(MODEL)
    lora = Lora(r=4, alpha=8, target_modules=["query", "value"])
    saved = prepare(model, SimpleNamespace(dropout=None, freeze_vision=False, lora=lora), MODEL, "train_embedder")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, weight in model.transformers_model.named_parameters():
            if "lora_B" in name:  # fresh adapters start at zero: give this one an effect to find
                weight.copy_(torch.randn(weight.shape, generator=generator) * 0.5)
    model.eval()
    scores = model.encode(list(QUERIES.values())) @ model.encode(list(PAGES.values())).T
    folder = tmp_path_factory.mktemp("adapter") / "adapter"
    write_model(model, folder, saved)
    expected = {q: {p: float(scores[i, j]) for j, p in enumerate(PAGES)} for i, q in enumerate(QUERIES)}
    return folder, expected


@pytest.fixture(scope="module")
def multivector(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multivector") / "multivector"
    model = load_multivector(MODEL, projection_dim=16, seed=7, query_length=16, document_length=8)
    model.save_pretrained(str(folder))
    return folder


# --- 1. vdr-eval on a LoRA-adapter folder and a multi-vector folder -------------------------------------------


def test_vdr_eval_scores_a_lora_adapter_folder_as_the_trained_model(adapter, dataset, tmp_path):
    folder, expected = adapter
    vdr_eval(dataset, tmp_path, "--run-file", str(tmp_path / "run.trec"), model=str(folder))
    run = read_trec_run(tmp_path / "run.trec")
    found = np.array([[run[q][p] for p in PAGES] for q in QUERIES])
    np.testing.assert_allclose(found, [[expected[q][p] for p in PAGES] for q in QUERIES], atol=2e-6)
    base = load_embedder(MODEL)
    base_scores = base.encode(list(QUERIES.values())) @ base.encode(list(PAGES.values())).T
    assert not np.allclose(found, base_scores, atol=1e-3)  # the adapter was applied, not its base alone


def damage_adapter(folder: Path, damage: str) -> None:
    if damage == "weights-missing":
        (folder / "adapter_model.safetensors").unlink()
    elif damage == "weights-cut-short":
        data = (folder / "adapter_model.safetensors").read_bytes()
        (folder / "adapter_model.safetensors").write_bytes(data[:7])
    elif damage == "config-not-json":
        (folder / "adapter_config.json").write_text('{"r": 4, ')
    elif damage == "base-gone":
        config = json.loads((folder / "adapter_config.json").read_text())
        (folder / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "/no/base"}))
    elif damage == "modules-json-missing":
        (folder / "modules.json").unlink()


@pytest.mark.parametrize(
    "damage, said",
    [
        ("weights-missing", "adapter_config.json names a LoRA adapter, but its weights adapter_model.safetensors are"),
        ("weights-cut-short", "adapter_model.safetensors is not a readable safetensors file"),
        ("config-not-json", "adapter_config.json is not valid JSON (Expecting"),
        ("base-gone", "--model (the base of the adapter ADAPTER): the model folder '/no/base' does not exist"),
        ("modules-json-missing", "holds a LoRA adapter but no modules.json"),
    ],
    ids=["weights-missing", "weights-cut-short", "config-not-json", "base-gone", "modules-json-missing"],
)
def test_a_damaged_adapter_folder_is_named_by_vdr_eval(adapter, dataset, tmp_path, monkeypatch, damage, said):
    folder = shutil.copytree(adapter[0], tmp_path / "adapter")
    damage_adapter(folder, damage)
    message = vdr_eval_says(monkeypatch, str(folder), dataset, tmp_path)
    assert said.replace("ADAPTER", str(folder)) in message
    assert message.startswith("vdr-eval: --model")
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize(
    "damage, said",
    [
        ("settings-not-json", "config_sentence_transformers.json is not valid JSON"),
        ("module-folder-missing", "could not be loaded (TypeError: Dense.__init__() missing"),
    ],
    ids=["settings-not-json", "module-folder-missing"],
)
def test_a_damaged_multi_vector_folder_is_named_by_vdr_eval(multivector, dataset, tmp_path, monkeypatch, damage, said):
    folder = shutil.copytree(multivector, tmp_path / "multivector")
    if damage == "settings-not-json":
        (folder / "config_sentence_transformers.json").write_text("{")
    else:
        shutil.rmtree(next(folder.glob("*_Dense")))  # modules.json still lists it
    message = vdr_eval_says(monkeypatch, str(folder), dataset, tmp_path)
    assert message.startswith(f"vdr-eval: --model: {folder}") and said in message


# --- ids a TREC run cannot hold, duplicate query ids, an empty query set: refused before any model is loaded ----

KINDS = ["dense", "multi-vector"]


def model_of(kind: str, multivector: Path) -> str:
    return MODEL if kind == "dense" else str(multivector)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["corpus", "queries"])
@pytest.mark.parametrize("character", [" ", "\t", "\n"], ids=["space", "tab", "newline"])
def test_an_id_holding_whitespace_is_refused_naming_the_file_and_row(
    kind, where, character, multivector, tmp_path, monkeypatch
):
    """Decided: refused, not rewritten. A TREC run separates its columns by whitespace, so such an id cannot be
    written faithfully, and any renaming would make the run and the qrels disagree."""
    bad = f"x{character}2"
    pages, queries, qrels = dict(PAGES), dict(QUERIES), {q: dict(d) for q, d in QRELS.items()}
    if where == "corpus":
        pages[bad] = pages.pop("p2")
        qrels["q2"] = {bad: 1}
    else:
        queries[bad] = queries.pop("q2")
        qrels[bad] = qrels.pop("q2")
    corpus = {"id": list(pages), "text": list(pages.values())}
    folder = beir_set(tmp_path / "set", corpus, {"id": list(queries), "text": list(queries.values())}, qrels)
    message = vdr_eval_says(monkeypatch, model_of(kind, multivector), folder, tmp_path, "--run-file", "r.trec")
    file = "corpus.parquet" if where == "corpus" else "queries.parquet"
    what = "corpus id" if where == "corpus" else "query id"
    row = list(pages if where == "corpus" else queries).index(bad)
    assert f"{folder / file}, row {row}: {what} {bad!r} is empty or contains whitespace" in message
    assert "rename it" in message and not (tmp_path / "r.trec").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_duplicate_query_ids_are_refused_by_vdr_eval(kind, multivector, tmp_path, monkeypatch):
    corpus = {"id": list(PAGES), "text": list(PAGES.values())}
    folder = beir_set(tmp_path / "set", corpus, {"id": ["q1", "q2", "q1"], "text": ["a", "b", "c"]}, QRELS)
    message = vdr_eval_says(monkeypatch, model_of(kind, multivector), folder, tmp_path)
    assert f"{folder / 'queries.parquet'}: duplicate query id(s) 'q1' (1 in all)" in message


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("qrels", ["header-only", "judging-queries"])
def test_an_empty_query_set_is_named_by_vdr_eval(kind, qrels, multivector, tmp_path, monkeypatch):
    corpus = {"id": list(PAGES), "text": list(PAGES.values())}
    queries = pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())})
    judged = "query-id\tcorpus-id\tscore\n" if qrels == "header-only" else QRELS
    folder = beir_set(tmp_path / "set", corpus, queries, judged)
    message = vdr_eval_says(monkeypatch, model_of(kind, multivector), folder, tmp_path)
    assert f"{folder / 'queries.parquet'}: the query set is empty (no rows)" in message


# --- 2. a read-only data folder, a full disk under data/ and models/ --------------------------------------------

PREVIOUS = {"train/part-00000.parquet": b"previous shard", "eval/qrels.tsv": b"query-id\tcorpus-id\tscore\n"}


def render_into(tmp_path: Path, output: Path):
    """render's main on a small typeset raw folder, writing `output`."""
    paths = render.Paths(
        params=render_params(tmp_path), raw=typeset_raw(tmp_path / "raw"), output=output, metrics=tmp_path / "r.json"
    )
    return lambda: render.main(paths)


def leftovers(output: Path) -> list[Path]:
    return list(output.parent.glob(f".{output.name}.*"))


def test_a_read_only_data_folder_stops_render_naming_the_output(tmp_path):
    data = tmp_path / "data"
    with data_folder(data):
        previous = plant(data / "rendered", PREVIOUS)
        run = render_into(tmp_path, data / "rendered")
        with read_only(data) as kind:
            message = one_sentence("render", run)
        if "EROFS" in kind:
            said = f"[Errno 30] {data / 'rendered'} could not be written: Read-only file system; the file system is"
        else:
            said = f"[Errno 13] {data / 'rendered'} could not be written: Permission denied; make {data} writable"
        assert message.startswith(f"render: {said}"), (kind, message)
        assert tree(data / "rendered") == previous and not leftovers(data / "rendered")
        assert not (tmp_path / "r.json").exists()


def test_a_full_disk_under_data_stops_render_naming_the_output(tmp_path):
    data = tmp_path / "data"
    with small_filesystem(data, size_kb=1024):  # a real tmpfs, filled
        previous = plant(data / "rendered", PREVIOUS)
        fill(data)
        message = one_sentence("render", render_into(tmp_path, data / "rendered"))
        assert message.startswith(f"render: [Errno 28] {data / 'rendered'} could not be written: No space left on ")
        assert f"free space on that disk (df -h {data})" in message
        assert tree(data / "rendered") == previous and not leftovers(data / "rendered")


def test_a_full_disk_simulated_in_the_parquet_writer_stops_render_naming_the_output(tmp_path, monkeypatch):
    """The same case where no file system can be mounted: pyarrow's own error, as it raises it (no file name)."""

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")

    data = tmp_path / "data"
    previous = plant(data / "rendered", PREVIOUS)
    run = render_into(tmp_path, data / "rendered")
    monkeypatch.setattr(pq, "write_table", full)
    message = one_sentence("render", run)
    assert f"[Errno 28] {data / 'rendered'} could not be written: No space left on device; free space" in message
    assert tree(data / "rendered") == previous and not leftovers(data / "rendered")


def publish_paths(tmp_path: Path, models: Path) -> publish.Paths:
    inputs = publish_inputs(tmp_path)
    return publish.Paths(
        params=inputs["params"],
        embedder=Path(resolve_model(MODEL)),
        reranker=tmp_path / "no-reranker",
        multivector=tmp_path / "no-multivector",
        metrics=inputs["metrics"],
        fetch_metrics=tmp_path / "metrics/fetch.json",
        generate_metrics=tmp_path / "metrics/generate.json",
        picture=tmp_path / "reports/none.svg",
        output=models / "published",
        reranker_output=models / "published_reranker",
        multivector_output=models / "published_multivector",
    )


def test_a_full_disk_under_models_stops_publish_naming_the_output(tmp_path, monkeypatch):
    """The model copy (shutil.copytree gathers its errors into one) on a full disk."""
    monkeypatch.chdir(tmp_path)  # publish reads dvc.yaml, dvc.lock and git from the working directory
    models = tmp_path / "models"
    with small_filesystem(models, size_kb=4096):  # smaller than the model: the copy fills it
        previous = plant(models / "published", {"README.md": b"the previous card\n", "model.safetensors": b"old"})
        message = one_sentence("publish", lambda: publish.main(publish_paths(tmp_path, models)))
        assert message.startswith(f"publish: [Errno 28] {models / 'published'} could not be written: No space left")
        assert tree(models / "published") == previous and not leftovers(models / "published")


# --- 3. SIGTERM or SIGKILL in the middle of a write: the previous output stays -----------------------------------


@pytest.mark.e2e  # a stage script as a subprocess
@pytest.mark.parametrize("stage", ["render", "publish"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_stage_killed_mid_write_keeps_its_previous_output(stage, sig, tmp_path):
    if stage == "render":
        output = tmp_path / "data/rendered"
        options = ["--params", render_params(tmp_path), "--raw", typeset_raw(tmp_path / "raw")]
        options += ["--output", output, "--metrics", tmp_path / "r.json"]
        part, unfinished = "train/part-00000.parquet", lambda folder: not (folder / "eval").exists()
    else:
        paths = publish_paths(tmp_path, tmp_path / "models")
        output = paths.output
        options = [f"--{name.replace('_', '-')}={value}" for name, value in vars(paths).items()]
        card = (paths.embedder / "README.md").read_bytes()  # the model's own, until publish writes its card
        part, unfinished = "model.safetensors", lambda folder: (folder / "README.md").read_bytes() == card
    previous = plant(output, {"README.md": b"the previous output\n", "train/part-00000.parquet": os.urandom(256)})
    ready = tmp_path / "ready"
    env = {**stage_environment(), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "tests.support.midwrite", stage, str(ready), *map(str, options)]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while not ready.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"the stage never reached its write:\n{log.read().decode()[-3000:]}")
                time.sleep(0.05)
            # mid-write: part of the new output is in the temporary sibling, the rest is not
            (temporary,) = leftovers(output)
            assert (temporary / output.name / part).is_file() and unfinished(temporary / output.name)
            process.send_signal(sig)
            assert process.wait(timeout=60) == -sig
        finally:
            process.kill()
    assert tree(output) == previous  # byte for byte
    assert leftovers(output) == [temporary]  # no cleanup runs in a killed process: the next write does it
    with atomic_path(output) as new:
        new.mkdir()
    assert not leftovers(output)


def test_only_the_leftovers_of_ended_processes_are_removed(tmp_path):
    output = tmp_path / "rendered"
    with atomic_path(output) as folder:
        folder.mkdir()
        (ours,) = leftovers(output)  # this process's own temporary, while it writes
        ended = tmp_path / ours.name.replace(f".{os.getpid()}.", ".999999999.")  # a process that has ended
        ended.mkdir()
        elsewhere = tmp_path / ".rendered.another-machine.999999999.abc"  # another host's (a shared disk)
        elsewhere.mkdir()
        with atomic_path(output) as second:  # another write of the same output
            second.mkdir()
        assert ours.exists() and not ended.exists() and elsewhere.exists()


def test_a_folder_output_is_moved_aside_whole_never_deleted_in_place(tmp_path, monkeypatch):
    """A kill while the old folder was being deleted file by file (shutil.rmtree) left half of it; now the old folder
    is renamed aside in one step and deleted only once the new one is in place."""
    output = tmp_path / "rendered"
    plant(output, {f"part-{number}.parquet": b"old" for number in range(5)})
    old_inode = output.stat().st_ino
    deleted = []
    real_rmtree = shutil.rmtree
    monkeypatch.setattr(
        shutil, "rmtree", lambda path, *a, **k: (deleted.append(Path(path)), real_rmtree(path, *a, **k))
    )
    with atomic_path(output) as folder:
        plant(folder, {"part-0.parquet": b"new"})
    assert tree(output) == {"part-0.parquet": b"new"} and output.stat().st_ino != old_inode
    assert output not in deleted and all(path.name.startswith(".rendered.") for path in deleted)


# --- 4. the documents folder changing while a run is in progress -------------------------------------------------


def fetch_paths(tmp_path: Path, documents: Path) -> fetch.Paths:
    return fetch.Paths(
        params=documents_params(tmp_path, documents),
        output=tmp_path / "data/raw",
        metrics=tmp_path / "metrics/fetch.json",
        check=tmp_path / "metrics/check.json",
    )


def test_a_folder_changed_after_check_stops_fetch_before_it_reads(tmp_path):
    documents = png_documents(tmp_path / "docs", 3)
    paths = fetch_paths(tmp_path, documents)
    write_json(paths.check, {"params": "valid", "inputs": {"fetch.path": folder_fingerprint(documents)}})
    previous = plant(paths.output, {"documents.parquet": b"the previous documents"})
    (documents / "page-9.png").write_bytes(page_png(9))  # copied in after check ran
    message = one_sentence("fetch", lambda: fetch.main(paths))
    assert f"fetch: fetch.path: {documents} changed after the check stage fingerprinted it" in message
    assert "now 4 files" in message and "run dvc repro again" in message
    assert tree(paths.output) == previous and not paths.metrics.exists()


@pytest.mark.parametrize(
    "change, said",
    [("rewritten", "rewritten: page-1.png"), ("added", "added: page-9.png"), ("removed", "removed: page-1.png")],
    ids=["rewritten", "added", "removed"],
)
def test_a_folder_changed_while_fetch_reads_it_stops_fetch(tmp_path, monkeypatch, change, said):
    documents = png_documents(tmp_path / "docs", 3)
    paths = fetch_paths(tmp_path, documents)
    write_json(paths.check, {"params": "valid", "inputs": {"fetch.path": folder_fingerprint(documents)}})
    real = vdr.data.sources.read_documents

    def changing(found, folder, *args, **kwargs):  # the folder changes between the scan and the reading
        if change == "rewritten":
            (documents / "page-1.png").write_bytes(page_png(7))
        elif change == "added":
            (documents / "page-9.png").write_bytes(page_png(9))
        else:
            (documents / "page-1.png").unlink()
        return real(found, folder, *args, **kwargs)

    monkeypatch.setattr(vdr.data.sources, "read_documents", changing)
    previous = plant(paths.output, {"documents.parquet": b"the previous documents"})
    message = one_sentence("fetch", lambda: fetch.main(paths))
    assert f"fetch: fetch.path: {documents} changed while fetch read it ({said}); nothing was written" in message
    assert tree(paths.output) == previous and not paths.metrics.exists() and not leftovers(paths.output)


@pytest.mark.parametrize("recorded", [True, False], ids=["as-checked", "no-check-record"])
def test_an_unchanged_folder_is_fetched(tmp_path, recorded):
    documents = png_documents(tmp_path / "docs", 3)
    paths = fetch_paths(tmp_path, documents)
    if recorded:
        write_json(paths.check, {"params": "valid", "inputs": {"fetch.path": folder_fingerprint(documents)}})
    fetch.main(paths)
    assert pq.read_table(paths.output / "documents.parquet").num_rows == 3


# --- 5. a relative fetch.path in DVC's temporary copy of the repository -------------------------------------------


def experiment_copy(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A workspace and DVC's copy of it, the stage running in the copy (as dvc exp run --temp / --queue set it up)."""
    workspace = tmp_path / "repo"
    copy = workspace / ".dvc/tmp/exps/standalone/tmp1234"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    monkeypatch.setenv("DVC_ROOT", str(workspace))
    return workspace, copy


def test_a_relative_folder_missing_from_the_copy_is_named_with_the_absolute_path(tmp_path, monkeypatch):
    _, copy = experiment_copy(tmp_path, monkeypatch)
    meant = png_documents(tmp_path / "pdfs", 2)  # ../pdfs from the workspace
    with pytest.raises(ValueError) as refused, fields_under("fetch"):
        require_in_experiment_copy("../pdfs")
    assert str(refused.value) == (
        f"fetch.path: '../pdfs' is a relative path, and this run works in DVC's temporary copy of the repository "
        f"({copy}, made by dvc exp run --temp or --queue, holding only what git tracks), where it names "
        f"{copy.parent / 'pdfs'}, which does not exist; give an absolute path, e.g. -S fetch.path={meant}"
    )


def test_files_git_does_not_track_left_out_of_the_copy_are_named(tmp_path, monkeypatch):
    workspace, copy = experiment_copy(tmp_path, monkeypatch)
    png_documents(workspace / "docs", 3)
    (workspace / ".gitignore").write_text(".dvc/tmp\ndocs/page-2.png\n")
    subprocess.run(["git", "init", "-q"], cwd=workspace, check=True)
    subprocess.run(["git", "add", ".gitignore", "docs/page-0.png"], cwd=workspace, check=True)
    png_documents(copy / "docs", 1)  # the copy holds what git tracks: page-0.png
    with pytest.raises(ValueError) as refused, fields_under("fetch"):
        require_in_experiment_copy("docs")
    message = str(refused.value)
    assert "lacks 2 file(s) of" in message and "(page-1.png, page-2.png)" in message  # untracked and ignored
    assert message.endswith("or copy each in: dvc exp run -C docs/page-1.png -C docs/page-2.png")


def test_a_relative_path_is_fine_in_the_workspace_and_an_absolute_one_anywhere(tmp_path, monkeypatch):
    workspace, copy = experiment_copy(tmp_path, monkeypatch)
    require_in_experiment_copy(str(png_documents(tmp_path / "pdfs", 1)))  # absolute
    monkeypatch.chdir(workspace)  # dvc repro, dvc exp run in the workspace: DVC_ROOT is where the stage runs
    require_in_experiment_copy("../pdfs")


@pytest.mark.e2e  # dvc exp run
def test_dvc_exp_run_temp_with_a_relative_fetch_path_stops_in_check(tmp_path):
    from vdr.config.profiles import compose

    env = stage_environment()
    documents = png_documents(tmp_path / "pdfs", 3)
    repo = project_repo(tmp_path / "repo", env, compose("documents", ["fetch.path=../pdfs", "generate.model=m"]))
    failed = subprocess.run(
        ["dvc", "exp", "run", "--temp", "check"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert failed.returncode != 0
    assert "check: fetch.path: '../pdfs' is a relative path, and this run works in DVC's temporary copy" in (
        failed.stdout + failed.stderr
    )
    assert f"give an absolute path, e.g. -S fetch.path={documents}" in failed.stdout + failed.stderr
    command = ["dvc", "exp", "run", "--temp", "-S", f"fetch.path={documents}", "check"]
    passed = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
    assert passed.returncode == 0, passed.stdout[-2000:] + passed.stderr[-2000:]

    # in the workspace, fetch reads the folder as check recorded it: no false alarm
    output = run(["dvc", "exp", "run", "-S", f"fetch.path={documents}", "fetch"], repo, env)
    assert ran_stages(output) == {"check", "fetch"}
    assert json.loads((repo / "metrics/fetch.json").read_text())["documents"] == 3
