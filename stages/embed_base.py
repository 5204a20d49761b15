"""embed_base: the base embedder's embeddings of the held-out queries and pages, computed once.

    python stages/embed_base.py       (run by `dvc repro embed_base`)

Finetuning never changes the base model, so its encoding of the held-out set is a stage of its own:
DVC reruns it only when the base model, how pages are read (models.page_input, model_kwargs,
processor_kwargs) or evaluate's encoding parameters (max_seq_length, batch_size) change, and the
evaluate stage scores the base embedder from these embeddings instead of encoding the corpus again.
Pages are read as models.page_input says (vdr/data/evalset.py): the text layer (OCR for image-only pages)
or the screenshot. Encoding runs on encode.devices (vdr/retrieval/devices.py); page embeddings larger than
search.max_memory_mb are encoded a chunk at a time straight into corpus.npy (vdr/retrieval/encode.py).
Writes data/embeddings/base: queries.npy and corpus.npy (full size) and info.json (ids and settings).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vdr.config.params import load_params
from vdr.data.evalset import EvalSet
from vdr.io.files import atomic_path
from vdr.models.loading import load_embedder
from vdr.retrieval.devices import encoding_pool
from vdr.retrieval.embeddings import encoding_settings, write_embeddings
from vdr.retrieval.encode import Spill, encode_documents, encode_queries
from vdr.stage import PageReading, parse_args, stage_process


@dataclass(frozen=True)
class Paths(PageReading):
    params: Path = Path("params.yaml")
    dataset: Path = Path("data/pages/eval")
    output: Path = Path("data/embeddings/base")


def main(paths: Paths) -> None:
    # 1. Parameters and the held-out set, read as the evaluate stage reads it
    params = load_params(paths.params)
    evaluate = params.evaluate
    evalset = EvalSet.load(paths.dataset)
    documents = evalset.documents(params.models.page_input, paths.ocr_cache, paths.ocr_workers, lazy=True)

    # 2. The base embedder, one encoding pass at full size, on every device of the pool, into a temporary folder
    model = load_embedder(params.models.embedder, params.models, max_seq_length=evaluate.max_seq_length)
    with (
        Spill(params.search.max_memory_mb) as spill,  # its bound decides; the file is corpus.npy itself
        atomic_path(paths.output) as temporary,
        encoding_pool(model, params.encode.devices, bf16=params.encode.bf16) as pool,
    ):
        temporary.mkdir()
        query_embeddings = encode_queries(model, evalset.query_texts, evaluate.batch_size, pool)
        corpus_embeddings = encode_documents(
            model, documents, evaluate.batch_size, pool, spill=spill, out=temporary / "corpus.npy"
        )

        # 3. The embeddings, with the ids and settings they belong to (the folder renamed into place on success)
        settings = encoding_settings(params)
        write_embeddings(
            temporary, query_embeddings, corpus_embeddings, evalset.query_ids, evalset.corpus_ids, settings
        )
    print(
        f"wrote {paths.output}: {len(evalset.query_ids)} queries and "
        f"{corpus_embeddings.shape[0]} pages x {corpus_embeddings.shape[1]} dims"
    )


if __name__ == "__main__":
    with stage_process("embed_base"):
        main(parse_args(Paths, __doc__))
