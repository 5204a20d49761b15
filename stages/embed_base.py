"""embed_base: the base embedder's embeddings of the held-out queries and pages, computed once.

    python stages/embed_base.py       (run by `dvc repro embed_base`)

Finetuning never changes the base model, so its encoding of the held-out set is a stage of its own:
DVC reruns it only when the base model, how pages are read (models.page_input, model_kwargs,
processor_kwargs) or evaluate's encoding parameters (max_seq_length, batch_size) change, and the
evaluate stage scores the base embedder from these embeddings instead of encoding the corpus again.
Pages are read as models.page_input says (vdr/data/evalset.py): the text layer (OCR for image-only pages)
or the screenshot. Encoding runs on encode.devices (vdr/retrieval/devices.py); page embeddings larger than
search.max_memory_mb are encoded a chunk at a time straight into corpus.npy (vdr/retrieval/encode.py).
Writes data/embeddings/base: queries.npy and corpus.npy (full size) and info.json (ids and settings). When
evaluate.max_seq_length cuts the inputs shorter than the model's own limit (and evaluate.base_as_is), also as_is/:
the same at the model's own limit, the base model as a user would run it out of the box, which the evaluate stage
scores as a row of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vdr.config.evaluation import Encode, Evaluate, Search
from vdr.config.lengths import with_measured_lengths
from vdr.config.models import Models
from vdr.config.section import load_sections
from vdr.data.evalset import EvalSet
from vdr.errors import fields_under
from vdr.io.files import atomic_path
from vdr.models.loading import check_token_limit, load_embedder
from vdr.retrieval.dense import DenseRetriever
from vdr.retrieval.embeddings import AS_IS, encoding_settings, write_embeddings
from vdr.retrieval.encode import Spill
from vdr.stage import PageReading, parse_args, stage_process


@dataclass(frozen=True)
class Paths(PageReading):
    params: Path = Path("params.yaml")
    dataset: Path = Path("data/pages/eval")
    output: Path = Path("data/embeddings/base")
    lengths: Path = Path("data/pages/lengths.json")  # evaluate.max_seq_length auto (stages/generate.py measured it)


def main(paths: Paths) -> None:
    # 1. Parameters and the held-out set, read as the evaluate stage reads it
    params = load_sections(paths.params, models=Models, evaluate=Evaluate, encode=Encode, search=Search)
    params = with_measured_lengths(params, paths.lengths)
    evaluate = params.evaluate
    evalset = EvalSet.load(paths.dataset)
    documents = evalset.documents(params.models.page_input, paths.ocr_cache, paths.ocr_workers, lazy=True)

    # 2. The base embedder, one encoding pass at full size at evaluate.max_seq_length, and a second at the model's
    #    own limit when that is longer (as a user would run it), each on every device of the pool
    with fields_under("models"):
        model = load_embedder(params.models.embedder, params.models)  # at its own token limit, checked below
        if evaluate.max_seq_length:
            check_token_limit(model, evaluate.max_seq_length, "embedder", what="evaluate.max_seq_length")
    own_length = model.max_seq_length
    lengths = {".": evaluate.max_seq_length or own_length}
    if evaluate.base_as_is and own_length and lengths["."] < own_length:
        lengths[AS_IS] = own_length
    with Spill(params.search.max_memory_mb) as spill, atomic_path(paths.output) as temporary:
        for subfolder, length in lengths.items():
            folder = temporary / subfolder
            folder.mkdir(exist_ok=True)
            if length:
                model.max_seq_length = length
            retriever = DenseRetriever(
                model, evaluate.batch_size, devices=params.encode.devices, bf16=params.encode.bf16, spill=spill
            )
            with fields_under("encode"), retriever.encoding():  # a device that is not here: encode.devices
                query_embeddings = retriever.encode_queries(evalset.query_texts)
                corpus_embeddings = retriever.index(documents, out=folder / "corpus.npy")

            # 3. The embeddings, with the ids and settings they belong to (the folder renamed into place at the end)
            settings = encoding_settings(params, max_seq_length=None if subfolder == "." else length)
            write_embeddings(
                folder, query_embeddings, corpus_embeddings, evalset.query_ids, evalset.corpus_ids, settings
            )
            print(
                f"{paths.output / subfolder}: {len(evalset.query_ids)} queries and {corpus_embeddings.shape[0]} "
                f"pages x {corpus_embeddings.shape[1]} dims at {length} tokens"
            )


if __name__ == "__main__":
    with stage_process("embed_base"):
        main(parse_args(Paths, __doc__))
