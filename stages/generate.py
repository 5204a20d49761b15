"""generate: queries for your own documents' pages, written by a vision-language model and filtered; any other
source's queries pass through unchanged.

    python stages/generate.py         (run by `dvc repro generate`)

With fetch.source: documents (generate.backend openai or transformers, vdr/data/querygen.py):
  1. a seeded sample of the training pages (generate.train_pages) and of the held-out pages (generate.eval_pages)
     is shown to the model, each page as its image (and its text layer with generate.with_text_layer), and asked
     for generate.queries_per_page queries; answers are cached on this machine under the hash of (page, model,
     prompt, settings) in $VDR_GENERATE_CACHE or ~/.cache/vdr/generate, so a killed or repeated run never asks
     twice; the API key (OPENAI_API_KEY) is read from the environment only
  2. a page whose requests kept failing, or whose answer held no usable query, is counted (or, with
     generate.on_bad_page: error, stops the stage, named); when every page failed (a wrong key, model name or URL),
     the stage stops saying so, with the failures' causes (HTTP status) and what to check. Whenever it stops here or
     in 3, metrics/generate.json is written first, with the counts and why it stopped
  3. filters, each counted in metrics/generate.json: too short or long, not a question (an instruction to a model,
     a shell command, code), duplicate, readable verbatim on its own page, and (generate.consistency_top_k) a
     training query whose page the base embedder does not rank in the top k of all training pages (round-trip
     consistency, as InPars and Promptagator filter)
  4. data/pages: train/ one row per kept (query, page); eval/ the BEIR layout: every page of the held-out
     documents as the corpus, their kept queries, and qrels (each query's own page)
Any other source (generate.backend: none): data/rendered is data/pages, file for file (hard links where possible).
Either way, first: the training pages' token lengths in the embedder's tokenizer (what the models read: the text
layer, OCR where it is empty), in metrics/generate.json (token_lengths), and the limit a max_seq_length of auto
stands for in every stage (vdr/models/lengths.py: the smallest multiple of 32 holding generate.length_coverage of the
pages whole, at most the model's own limit) in data/pages/lengths.json, which holds only what the limit is, so a
change that leaves the limit as it was reruns nothing after generate; nothing is measured when the models read
page images.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vdr.config.evaluation import Encode, Search
from vdr.config.generate import Generate
from vdr.config.lengths import LENGTHS, with_limit
from vdr.config.mining import Mine
from vdr.config.models import Models
from vdr.config.render import Render
from vdr.config.section import load_sections
from vdr.data.corpus import query_on_page, stable_rank
from vdr.data.querygen import (
    DEFAULT_PROMPT,
    SERVER_HINT,
    OpenAIChat,
    Page,
    ResponseCache,
    Settings,
    TransformersChat,
    every_page_failed,
    failure_causes,
    filter_queries,
    generate_queries,
    problems,
)
from vdr.data.reading import read_pages
from vdr.data.validation import validation_documents, write_validation_set
from vdr.errors import fields_under
from vdr.io.files import atomic_path, user_cache_dir, write_json
from vdr.io.images import decode_image
from vdr.io.qrels import write_qrels
from vdr.io.tables import read_table, require_columns, write_shards
from vdr.models.lengths import limit_record, measure_lengths, not_measured
from vdr.models.loading import load_embedder
from vdr.retrieval.dense import DenseRetriever
from vdr.retrieval.encode import Spill
from vdr.stage import PageReading, parse_args, stage_process


@dataclass(frozen=True)
class Paths(PageReading):
    params: Path = Path("params.yaml")
    rendered: Path = Path("data/rendered")
    output: Path = Path("data/pages")
    metrics: Path = Path("metrics/generate.json")
    cache: Path | None = field(
        default=None, metadata={"help": "answer cache (default $VDR_GENERATE_CACHE or ~/.cache/vdr/generate)"}
    )


TRAIN_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("image", pa.binary()),
        ("text", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("query", pa.string()),
    ]
)


def main(paths: Paths) -> None:
    params = load_sections(
        paths.params, generate=Generate, render=Render, models=Models, mine=Mine, encode=Encode, search=Search
    )
    generate = params.generate
    # 0. The training pages' token lengths, and the limit max_seq_length auto stands for (vdr/models/lengths.py)
    if not paths.rendered.is_dir():
        raise FileNotFoundError(f"{paths.rendered}: not found; run `dvc repro render` first")
    train = read_table(paths.rendered / "train")
    measured = measure_training_pages(train, paths, params)
    lengths = limit_record(measured)  # data/pages/lengths.json; the figures go to metrics/generate.json
    if lengths["max_seq_length"] is not None:
        params = with_limit(params, lengths["max_seq_length"], "measured on the training pages")
    if generate.backend == "none":  # the source's own queries; a validation split carved from the training rows
        sizes = pass_through(train, paths.rendered, paths.output, generate, params.render.shard_size, lengths)
        write_json(
            paths.metrics, {"backend": "none", "queries": "the source's own", **sizes, "token_lengths": measured}
        )
        print_counts(sizes)
        return

    # 1. The pages of the training and the held-out documents, and the seeded sample of each to ask
    corpus = read_table(paths.rendered / "eval" / "corpus")
    for table, where in ((train, paths.rendered / "train"), (corpus, paths.rendered / "eval" / "corpus")):
        require_columns(table, ["id", "document", "image", "text"], where)
    asked = {
        "train": sample_rows(train, generate.train_pages, generate.seed),
        "eval": sample_rows(corpus, generate.eval_pages, generate.seed),
    }
    tables = {"train": train, "eval": corpus}

    # 2. Ask the model; answers are cached by (page, model, prompt, settings)
    settings = Settings(
        model=generate.model,
        queries_per_page=generate.queries_per_page,
        prompt=generate.prompt or DEFAULT_PROMPT,
        temperature=generate.temperature,
        top_p=generate.top_p,
        max_tokens=generate.max_tokens,
        seed=generate.seed,
        with_text_layer=generate.with_text_layer,
    )
    cache = ResponseCache(paths.cache or user_cache_dir("generate"))
    pages = {split: as_pages(tables[split], asked[split]) for split in asked}
    uncached = [p for split in pages for p in pages[split] if cache.get(cache.key(p, settings)) is None]
    print(
        f"asking for queries: {sum(map(len, pages.values()))} pages, {len(uncached)} not in the cache ({cache.folder})"
    )
    backend = make_backend(generate, needed=bool(uncached))
    generated = {
        split: generate_queries(pages[split], backend, settings, cache, generate.concurrency) for split in pages
    }
    everything = generated["train"] + generated["eval"]
    counts, kept = {}, {}
    metrics = {
        "backend": generate.backend,
        "model": generate.model,
        "prompt_sha256": hashlib.sha256(settings.prompt.encode()).hexdigest(),
        "pages_asked": {split: len(asked[split]) for split in asked},
        "answers_from_cache": sum(item.cached for item in everything),
        "pages_without_queries": dict(problems(everything, "skip")),
        "failure_causes": failure_causes(everything),
        "queries": counts,
        "token_lengths": measured,
    }

    def stop(error: Exception) -> Exception:
        """`error`, once metrics/generate.json holds the counts so far and the reason: a stage that stops here
        leaves them to look at."""
        write_json(paths.metrics, {**metrics, "stopped": str(error)})
        return error

    hint = SERVER_HINT if generate.backend == "openai" else "check generate.model and its memory (generate.batch_size)"
    failed_everywhere = every_page_failed(everything, hint)
    if failed_everywhere:
        raise stop(RuntimeError(f"{failed_everywhere}; the counts are in {paths.metrics}"))
    try:
        problems(everything, generate.on_bad_page)
    except RuntimeError as error:
        raise stop(error) from None

    # 3. Filters, each counted: length, not a query, duplicates, verbatim on the page, round-trip consistency
    for split in ("train", "eval"):
        pairs, counts[split] = filter_queries(generated[split], generate.min_query_chars, generate.max_query_chars)
        del counts[split]["kept"]  # counted again after the filters below
        text = dict(zip(tables[split]["id"].to_pylist(), tables[split]["text"].to_pylist()))
        readable = [query_on_page(query, text[page] or "") for page, query in pairs]
        pairs = [pair for pair, on_page in zip(pairs, readable) if not on_page]
        counts[split]["verbatim_on_page"] = sum(readable)
        filtered = generate.consistency_top_k is not None and (split == "train" or generate.filter_eval_queries)
        if filtered:
            consistent = round_trip_consistent(pairs, tables[split], generate.consistency_top_k, params, paths, split)
            counts[split]["inconsistent"] = len(pairs) - len(consistent)
            pairs = consistent
        counts[split]["kept"] = len(pairs)
        kept[split] = pairs
        if not pairs:
            failed = sum(item.problem == "failed" for item in generated[split])
            failures = f"; {failed} {split} page(s) failed ({failure_causes(generated[split])})" if failed else ""
            raise stop(
                ValueError(
                    f"no {split} query is left after the filters ({counts[split]}{failures}); see {paths.metrics} "
                    "and check the model's answers (generate.model, generate.prompt) or loosen the filters"
                )
            )

    # 4. Write data/pages atomically: training pairs, the validation split (a seeded share of the training
    #    documents, vdr/data/validation.py) and the held-out set, both in the BEIR layout
    rows = {row["id"]: row for row in train.select(["id", "document", "image", "text", "width", "height"]).to_pylist()}
    pairs = [dict(rows[page], query=query) for page, query in kept["train"]]
    held = validation_documents([row["document"] for row in pairs], generate.validation_share, generate.seed)
    with atomic_path(paths.output) as folder:
        training = [row for row in pairs if row["document"] not in held]
        write_shards(folder / "train", training, TRAIN_SCHEMA, params.render.shard_size)
        validation = [row for row in pairs if row["document"] in held]
        validation_sizes = write_validation_set(folder / "validation", validation, params.render.shard_size)
        link_or_copy_tree(paths.rendered / "eval" / "corpus", folder / "eval" / "corpus")
        query_ids = [f"q-{page}-{n}" for n, (page, _) in enumerate(kept["eval"])]
        queries = [{"id": q, "text": query} for q, (_, query) in zip(query_ids, kept["eval"])]
        pq.write_table(
            pa.Table.from_pylist(queries, schema=pa.schema([("id", pa.string()), ("text", pa.string())])),
            folder / "eval" / "queries.parquet",
        )
        write_qrels(folder / "eval" / "qrels.tsv", {q: {page: 1} for q, (page, _) in zip(query_ids, kept["eval"])})
        write_json(folder / LENGTHS, lengths)

    sizes = {
        "train_pairs": len(training),
        **validation_sizes,
        "eval_queries": len(kept["eval"]),
        "eval_pages": corpus.num_rows,
    }
    write_json(paths.metrics, {**metrics, **sizes})
    print_counts(sizes, counts)


def measure_training_pages(train: pa.Table, paths: Paths, params) -> dict:
    """The training pages' token lengths, as the models read them (text layer, OCR where it is empty), in the
    embedder's tokenizer, and the limit chosen for max_seq_length auto; pages read as images are not measured."""
    if params.models.page_input == "image":
        return not_measured(params.models.page_input)
    texts = read_pages(train, "text", paths.rendered / "train", paths.ocr_cache, paths.ocr_workers)
    with fields_under("models"):
        lengths = measure_lengths(texts, params.models.embedder, params.generate.length_coverage)
    tokens = lengths["tokens"]
    print(
        f"training pages in tokens: median {tokens['median']}, 90% at most {tokens['p90']}, longest {tokens['max']}; "
        f"a max_seq_length of auto is {lengths['max_seq_length']} (the model's own: {lengths['model_max_seq_length']})"
    )
    return lengths


def print_counts(sizes: dict, filtered: dict | None = None) -> None:
    """What was written, and with generated queries what each filter dropped, as two short tables."""
    print("\n".join(f"  {name:<20} {value:>8,}" for name, value in sizes.items()))
    if filtered:
        reasons = sorted({reason for split in filtered.values() for reason in split})
        print(f"  {'queries':<20} {'train':>8} {'eval':>8}")
        for reason in reasons:
            cells = "".join(f" {filtered.get(split, {}).get(reason, 0):>8,}" for split in ("train", "eval"))
            print(f"  {reason:<20}{cells}")


def sample_rows(table: pa.Table, size: int | None, seed: int) -> list[int]:
    """A seeded sample of `size` rows (every row when size is null), in the table's order."""
    ids = table["id"].to_pylist()
    chosen = sorted(range(len(ids)), key=lambda row: stable_rank(ids[row], seed))[: size or len(ids)]
    return sorted(chosen)


def as_pages(table: pa.Table, rows: list[int]) -> list[Page]:
    picked = table.take(rows)
    return [
        Page(id=i, image=image, text=text or "")
        for i, image, text in zip(picked["id"].to_pylist(), picked["image"].to_pylist(), picked["text"].to_pylist())
    ]


def make_backend(generate, needed: bool):
    """The model that writes the queries: none when every answer is cached (nothing is loaded or asked); an openai
    server is reached once first (GET /models, with the key), so that a wrong URL or a refused key stops the stage
    at once, and a model name the server does not list is warned about."""
    if not needed:
        return None
    if generate.backend == "transformers":
        return TransformersChat(generate.model, batch_size=generate.batch_size, dtype=generate.dtype)
    chat = OpenAIChat(
        generate.base_url, generate.model, timeout_s=generate.timeout_s, max_retries=generate.max_retries
    )
    listed = chat.probe()
    if listed and generate.model not in listed:
        shown = ", ".join(repr(name) for name in listed[:10]) + (", ..." if len(listed) > 10 else "")
        print(
            f"warning: generate.model {generate.model!r} is not among the models {generate.base_url} lists "
            f"({shown}); if every page fails, set -S generate.model=NAME"
        )
    return chat


def round_trip_consistent(pairs, pages: pa.Table, top_k: int, params, paths: Paths, split: str) -> list:
    """The (page, query) pairs whose page the base embedder ranks in the top k of all `pages` for the query."""
    with fields_under("models"):
        model = load_embedder(params.models.embedder, params.models, max_seq_length=params.mine.max_seq_length)
    where = paths.rendered / split
    documents = read_pages(pages, params.models.page_input, where, paths.ocr_cache, paths.ocr_workers, decode=False)
    read = decode_image if params.models.page_input == "image" else None
    row_of = {page_id: row for row, page_id in enumerate(pages["id"].to_pylist())}
    with Spill(params.search.max_memory_mb, paths.output.parent) as spill:
        retriever = DenseRetriever(
            model, params.mine.batch_size, devices=params.encode.devices, bf16=params.encode.bf16, spill=spill
        )
        with fields_under("encode"), retriever.encoding():  # a device that is not here: encode.devices
            query_embeddings = retriever.encode_queries([query for _, query in pairs])
            page_embeddings = retriever.index(documents, read=read)
        ranked, _ = retriever.search(query_embeddings, page_embeddings, top_k)  # within search.max_memory_mb
    return [pair for pair, top in zip(pairs, ranked) if row_of[pair[0]] in set(top.tolist())]


def link_or_copy_tree(source: Path, destination: Path, ignore=None) -> None:
    """`source` copied file for file as hard links (the same bytes, no second copy on disk), or copies across
    file systems; `ignore` as shutil.copytree takes it."""

    def link_or_copy(from_path, to_path):
        try:
            os.link(from_path, to_path)
        except OSError:
            shutil.copy2(from_path, to_path)

    shutil.copytree(source, destination, copy_function=link_or_copy, ignore=ignore)


def pass_through(train: pa.Table, rendered: Path, output: Path, generate, shard_size: int, lengths: dict) -> dict:
    """data/rendered as data/pages (hard links where possible), but for the validation split: a seeded share of the
    training pages (`train`, read from data/rendered/train, each its own document) moved out of train/ into
    validation/; and `lengths`. Returns the counts."""
    page_ids = train["id"].to_pylist()
    held = validation_documents(page_ids, generate.validation_share, generate.seed)
    in_validation = pa.array([page in held for page in page_ids], type=pa.bool_())
    with atomic_path(output) as folder:
        link_or_copy_tree(rendered, folder, ignore=shutil.ignore_patterns("train") if held else None)
        if held:  # train/ without the validation pages; else linked as it is
            training = train.filter(pc.invert(in_validation)).to_pylist()
            write_shards(folder / "train", training, train.schema, shard_size)
        sizes = write_validation_set(folder / "validation", train.filter(in_validation).to_pylist(), shard_size)
        write_json(folder / LENGTHS, lengths)
    return {"train_pairs": len(page_ids) - sizes["validation_queries"], **sizes}


if __name__ == "__main__":
    with stage_process("generate"):
        main(parse_args(Paths, __doc__))
