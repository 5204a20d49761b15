"""embed_base: the base embedder's embeddings of the held-out queries and pages, computed once.

    python stages/embed_base.py       (run by `dvc repro embed_base`)

Finetuning never changes the base model, so its encoding of the held-out set is a stage of its own:
DVC reruns it only when the base model, how pages are read (models.page_input, model_kwargs,
processor_kwargs) or evaluate's encoding parameters (max_seq_length, batch_size) change, and the
evaluate stage scores the base embedder from these embeddings instead of encoding the corpus again.
Pages are read as models.page_input says (vdr/evalset.py): the text layer (OCR for image-only pages)
or the screenshot. Writes data/embeddings/base: queries.npy and corpus.npy (full size) and info.json
(ids and settings).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vdr.embeddings import encoding_settings, save_embeddings
from vdr.evalset import EvalSet
from vdr.models import load_embedder
from vdr.params import load_params
from vdr.retrieval import encode_documents, encode_queries
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
    documents = evalset.documents(params.models.page_input, paths.ocr_cache, paths.ocr_workers)

    # 2. The base embedder, one encoding pass at full size
    model = load_embedder(params.models.embedder, params.models, max_seq_length=evaluate.max_seq_length)
    query_embeddings = encode_queries(model, evalset.query_texts, evaluate.batch_size)
    corpus_embeddings = encode_documents(model, documents, evaluate.batch_size)

    # 3. The embeddings, with the ids and settings they belong to
    settings = encoding_settings(params)
    save_embeddings(paths.output, query_embeddings, corpus_embeddings, evalset.query_ids, evalset.corpus_ids, settings)
    print(
        f"wrote {paths.output}: {len(evalset.query_ids)} queries and "
        f"{corpus_embeddings.shape[0]} pages x {corpus_embeddings.shape[1]} dims"
    )


if __name__ == "__main__":
    with stage_process("embed_base"):
        main(parse_args(Paths, __doc__))
