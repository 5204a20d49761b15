"""The composed `blog` profile equals the published recipe, setting by setting.

Each row: (key in params.yaml, the recipe's value, where the recipe states it).
"""

import pytest

from vdr.config.params import Params
from vdr.config.profiles import compose

RECIPE = [
    # model
    ("models.embedder", "Qwen/Qwen3-VL-Embedding-2B", "Model: SentenceTransformer('Qwen/Qwen3-VL-Embedding-2B', ...)"),
    ("models.model_kwargs.attn_implementation", "flash_attention_2", "Model: model_kwargs attn_implementation"),
    ("models.model_kwargs.dtype", "bfloat16", "Model: model_kwargs torch_dtype (the blog used bf16 weights)"),
    ("models.processor_kwargs.size.shortest_edge", 28 * 28, "Model: min_pixels=28*28"),
    ("models.processor_kwargs.size.longest_edge", 600 * 600, "Model: max_pixels=600*600"),
    ("models.page_input", "image", "Model: page screenshots are the model input"),
    ("models.reranker", "Qwen/Qwen3-VL-Reranker-2B", "Reranker: the natural base for a document reranker"),
    # data
    ("fetch.source", "hub", "Data: on the Hub"),
    ("fetch.dataset", "tomaarsen/llamaindex-vdr-en-train-preprocessed", "Data"),
    ("fetch.train_config", "train", "Data: config train (10,000 rows)"),
    ("fetch.eval_config", "eval", "Data: config eval (300 rows)"),
    ("fetch.split", "train", "Data: each config has one split named train"),
    ("fetch.query_column", "query", "Data: columns"),
    ("fetch.positive_column", "image", "Data: columns"),
    ("fetch.train_negative_columns", ["negative_0"], "Data: training uses query, image, negative_0"),
    (
        "fetch.eval_negative_columns",
        ["negative_0", "negative_1", "negative_2", "negative_3"],
        "Data: 300*(k+1)+i -> negative_k, k in 0..3",
    ),
    ("fetch.max_train_rows", None, "Data: all 10,000 training rows"),
    ("fetch.max_eval_rows", None, "Data: all 300 eval rows"),
    ("mine.source", "given", "Data: the negatives arrive precomputed"),
    ("mine.num_negatives", 1, "Data: triplets"),
    # loss
    ("train_embedder.mini_batch_size", 1, "Loss: CachedMultipleNegativesRankingLoss(mini_batch_size=1)"),
    ("train_embedder.matryoshka_dims", [2048, 1536, 1024, 512, 256, 128, 64], "Loss: matryoshka_dims"),
    # training arguments
    ("train_embedder.max_train_samples", None, "Training: one epoch over the whole train config"),
    ("train_embedder.max_seq_length", None, "Training: no truncation set"),
    ("train_embedder.epochs", 1, "Training: num_train_epochs=1"),
    ("train_embedder.batch_size", 64, "Training: per_device_train_batch_size=64"),
    # per_device_eval_batch_size=64 is not a param: it sizes the batches of an eval_dataset's loss, and the recipe
    # (like train_embedder) passes no eval_dataset; its evaluator's batch size is evaluator_batch_size below
    ("train_embedder.learning_rate", 2e-5, "Training: learning_rate=2e-5"),
    ("train_embedder.warmup_ratio", 0.1, "Training: warmup_ratio=0.1"),
    ("train_embedder.bf16", True, "Training: bf16=True"),
    ("train_embedder.batch_sampler", "no_duplicates_hashed", "Training: NO_DUPLICATES (hashed for image columns)"),
    ("train_embedder.eval_steps", 0.1, "Training: eval every 0.1 epoch"),
    ("train_embedder.save_steps", 0.1, "Training: save every 0.1 epoch"),
    ("train_embedder.save_total_limit", 2, "Training: save_total_limit=2"),
    ("train_embedder.logging_steps", 0.05, "Training: logging every 0.05 epoch"),
    ("train_embedder.seed", 42, "Training: seed 42 (default)"),
    # evaluation
    ("train_embedder.evaluator_name", "vdr-eval-hard", "Evaluation: name='vdr-eval-hard'"),
    ("train_embedder.evaluator_batch_size", 1, "Evaluation: batch_size=1"),
    ("evaluate.batch_size", 1, "Evaluation: batch_size=1"),
    ("evaluate.dims", [2048, 1536, 1024, 512, 256, 128, 64], "Evaluation: once per Matryoshka dim"),
    (
        "evaluate.top_k",
        20,
        "not in the post, which reranks nothing: the reranker reorders the top 20; NDCG@10 stays the primary metric",
    ),
    ("evaluate.max_seq_length", None, "Evaluation: no truncation set"),
    # reranker (the post's multimodal reranker example)
    ("train_reranker.learning_rate", 5e-6, "Reranker: lr 5e-6"),
    ("train_reranker.batch_size", 8, "Reranker: batch 8"),
    ("train_reranker.gradient_accumulation_steps", 4, "Reranker: grad-accum 4"),
    ("train_reranker.epochs", 1, "Reranker: 1 epoch"),
    ("train_reranker.bf16", True, "Reranker: bf16"),
    # publishing
    ("publish.truncate_dim", 1024, "Model: the published model sets truncate_dim=1024"),
]


def lookup(params: dict, key: str):
    for part in key.split("."):
        params = params[part]
    return params


@pytest.fixture(scope="module")
def blog():
    return compose("blog")


@pytest.mark.parametrize("key, value, source", RECIPE, ids=[row[0] for row in RECIPE])
def test_blog_profile_is_the_recipe(blog, key, value, source):
    assert lookup(blog, key) == value, f"{key}: the recipe says {value!r} ({source})"


def test_blog_profile_validates(blog):
    params = Params.model_validate(blog)
    assert params.fetch.source == "hub" and params.profile_name == "blog"


def test_fp32_weights_with_bf16_autocast_is_one_override():
    params = Params.model_validate(compose("blog", ["models.model_kwargs.dtype=float32"]))
    assert params.models.model_kwargs.dtype == "float32" and params.train_embedder.bf16


LATE_RECIPE = [  # the sentence-transformers multimodal multi-vector recipe (NDCG@10 0.8244 -> 0.9278)
    ("train_multivector.enabled", True, "the late profile trains the multi-vector model"),
    ("models.embedder", "Qwen/Qwen3-VL-Embedding-2B", "Model: Qwen3-VL-Embedding-2B as a multi-vector model"),
    ("models.page_input", "image", "Model: page screenshots"),
    ("train_multivector.projection_dim", 128, "Model: a fresh 128-d projection"),
    ("train_multivector.mini_batch_size", 1, "Loss: CachedMultiVectorMultipleNegativesRankingLoss(mini_batch_size=1)"),
    ("train_multivector.batch_size", 64, "Training: batch 64"),
    ("train_multivector.learning_rate", 2e-5, "Training: lr 2e-5"),
    ("train_multivector.projection_learning_rate", 2e-4, "Training: 2e-4 for the projection"),
    ("train_multivector.max_grad_norm", 30.0, "Training: max_grad_norm 30"),
    ("train_multivector.document_length", None, "Model: image tokens are never truncated"),
]


@pytest.fixture(scope="module")
def late():
    return compose("late")


@pytest.mark.parametrize("key, value, source", LATE_RECIPE, ids=[row[0] for row in LATE_RECIPE])
def test_late_profile_is_the_multi_vector_recipe(late, key, value, source):
    assert lookup(late, key) == value, f"{key}: the recipe says {value!r} ({source})"


def test_late_profile_is_the_blog_profile_plus_late_interaction(late, blog):
    assert Params.model_validate(late).late_interaction is not None
    rest = {k: v for k, v in late.items() if k not in ("profile_name", "train_multivector")}
    assert rest == {k: v for k, v in blog.items() if k not in ("profile_name", "train_multivector")}
    assert Params.model_validate(blog).late_interaction is None
