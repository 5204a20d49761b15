"""A tiny random Qwen3-VL, built offline, for tests and GPU smoke checks.

    python -m tests.support.tiny_vlm OUTPUT_FOLDER     # writes OUTPUT_FOLDER/{embedder,reranker,dataset}

Same architecture and loading path as Qwen/Qwen3-VL-Embedding-2B and Qwen/Qwen3-VL-Reranker-2B, at toy
size: hidden size 64, 2 layers, a 1-block vision tower, a byte-level BPE tokenizer trained on the fly,
the Qwen2-VL image processor and a ChatML chat template. The embedder loads with
`SentenceTransformer(folder)` (Transformer feature-extraction -> Pooling lasttoken -> Normalize); the
reranker with `CrossEncoder(folder)` (Transformer any-to-any -> LogitScore on the "yes"/"no" tokens).
`synthetic_dataset` writes page screenshots in the layout of tomaarsen/llamaindex-vdr-en-train-preprocessed
(configs train and eval; query, image, negative_0..3), and `tiny_blog_params` turns the `blog` profile into
a run of minutes on these. `build_config(tokenizer, architecture)` gives the same wiring at any size
(benchmarks/gpu_check.py builds the published 2B architecture with it). Nothing is downloaded.
"""

from __future__ import annotations

import sys
from pathlib import Path

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# ChatML, as Qwen2-VL's template renders it: any role, text and image/video parts
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

TRAINING_TEXT = [
    "What was the company's revenue in the third quarter? Table of quarterly results, net income and margins.",
    "Annual report: balance sheet, cash flow statement, notes to the financial statements, yes no",
    "How many patients were enrolled in the clinical trial? Methods, results, discussion, figures and charts.",
    "The quick brown fox jumps over the lazy dog. 0123456789 !?.,;:()[]{}<>-_+=*/%$#@&",
]


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(TRAINING_TEXT * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",  # causal models score the last token; sentence-transformers checks left padding
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
    )


def build_processor(tokenizer, min_pixels: int = 32 * 32, max_pixels: int = 64 * 64 * 4):
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    image_processor = Qwen2VLImageProcessor(patch_size=16, merge_size=2, temporal_patch_size=2, size=size)
    video_processor = Qwen3VLVideoProcessor(patch_size=16, merge_size=2, temporal_patch_size=2)
    return Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


# the toy size; benchmarks/gpu_check.py passes the published architecture instead
TINY_ARCHITECTURE = {
    "text_config": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "max_position_embeddings": 4096,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": [2, 3, 3],
            "mrope_interleaved": True,
        },
    },
    "vision_config": {
        "depth": 1,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "out_hidden_size": 64,
        "num_position_embeddings": 64,
        "deepstack_visual_indexes": [0],
    },
    "tie_word_embeddings": False,
}


def build_config(tokenizer, architecture: dict = TINY_ARCHITECTURE):
    """A Qwen3VLConfig of `architecture` (text_config, vision_config, tie_word_embeddings) whose special token
    ids are the tokenizer's; the vocabulary is the tokenizer's unless the architecture gives a larger one."""
    from transformers import Qwen3VLConfig

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    text_config = {
        "vocab_size": len(tokenizer),
        **architecture["text_config"],
        "pad_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
    }
    return Qwen3VLConfig(
        text_config=text_config,
        vision_config=architecture["vision_config"],
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=architecture.get("tie_word_embeddings", False),
    )


def build(output: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """Write a tiny embedder and a tiny reranker under `output`; return their folders."""
    import torch
    from sentence_transformers import CrossEncoder, SentenceTransformer
    from sentence_transformers.cross_encoder.modules import LogitScore
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import Qwen3VLForConditionalGeneration, Qwen3VLModel

    output = Path(output)
    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer)
    config = build_config(tokenizer)

    # the backbones, random weights saved as Hugging Face checkpoints with their processor
    torch.manual_seed(seed)
    backbone, generator = output / "backbone", output / "backbone-lm"
    Qwen3VLModel(config).save_pretrained(backbone)
    processor.save_pretrained(backbone)
    torch.manual_seed(seed)
    Qwen3VLForConditionalGeneration(config).save_pretrained(generator)
    processor.save_pretrained(generator)

    # the embedder: Transformer (feature-extraction) -> Pooling (last token) -> Normalize
    transformer = Transformer(str(backbone), transformer_task="feature-extraction")
    embedder = SentenceTransformer(
        modules=[transformer, Pooling(transformer.get_embedding_dimension(), "lasttoken"), Normalize()]
    )
    embedder.save_pretrained(str(output / "embedder"))

    # the reranker: Transformer (any-to-any) -> LogitScore(yes - no) at the last position
    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
    if tokenizer.unk_token_id in (yes, no) or yes is None or no is None:
        yes, no = tokenizer.encode("yes")[-1], tokenizer.encode("no")[-1]
    lm = Transformer(str(generator), transformer_task="any-to-any")
    reranker = CrossEncoder(modules=[lm, LogitScore(true_token_id=yes, false_token_id=no)])
    reranker.save_pretrained(str(output / "reranker"))
    return output / "embedder", output / "reranker"


TOPICS = [
    "revenue",
    "patients",
    "rainfall",
    "turbines",
    "tariffs",
    "vaccines",
    "satellites",
    "wheat",
    "bonds",
    "glaciers",
    "robots",
    "coffee",
]


def page_image(number: int, width: int = 160, height: int = 208):
    """A page screenshot whose look depends on `number`: a title, coloured blocks, text lines."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    colour = ((number * 67) % 256, (number * 131) % 256, (number * 29) % 256)
    draw.rectangle([8, 8, width - 8, 28], fill=colour)
    draw.text((12, 12), f"Report {number}: {TOPICS[number % len(TOPICS)]}", fill="black")
    for line in range(6):
        y = 40 + line * 22 + (number % 5) * 2
        draw.rectangle(
            [12, y, 12 + ((number * 37 + line * 53) % (width - 24)), y + 8], fill=colour if line % 2 else "grey"
        )
    return image


def synthetic_dataset(root: str | Path, train_rows: int = 24, eval_rows: int = 8) -> Path:
    """`root/train` (a `save_to_disk` DatasetDict, split train) and `root/eval` (Parquet files, as on the Hub)."""
    from datasets import Dataset, DatasetDict, Features, Image, Value

    root = Path(root)
    features = Features({"query": Value("string"), "image": Image(), **{f"negative_{k}": Image() for k in range(4)}})

    def rows(start: int, count: int) -> Dataset:
        numbers = range(start, start + count)
        columns = {
            "query": [f"what does report {n} say about {TOPICS[n % len(TOPICS)]}?" for n in numbers],
            "image": [page_image(n) for n in numbers],
        }
        for k in range(4):
            columns[f"negative_{k}"] = [page_image(1000 + n * 4 + k) for n in numbers]
        return Dataset.from_dict(columns, features=features)

    DatasetDict({"train": rows(0, train_rows)}).save_to_disk(str(root / "train"))
    (root / "eval").mkdir(parents=True, exist_ok=True)
    rows(train_rows, eval_rows).to_parquet(str(root / "eval" / "train-00000-of-00001.parquet"))
    return root


def tiny_blog_params(blog: dict, embedder: str, reranker: str, dataset: str, bf16: bool = False) -> dict:
    """The `blog` profile, every stage kept, at toy size: a local dataset, the tiny models, small batches."""
    params = {section: dict(values) if isinstance(values, dict) else values for section, values in blog.items()}
    fetch = {k: v for k, v in blog["fetch"].items() if k not in ("dataset", "revision")}
    params["fetch"] = {**fetch, "source": "local", "path": dataset}
    params["models"] = {**blog["models"], "embedder": embedder, "reranker": reranker}
    params["models"]["model_kwargs"] = {"attn_implementation": "sdpa", "dtype": "bfloat16" if bf16 else "float32"}
    params["render"].update(workers=1, shard_size=16, max_pixels=160 * 208)
    params["mine"].update(batch_size=8, range_max=20, relative_margin=0.0)
    params["mine_reranker"].update(batch_size=8, range_max=20, relative_margin=0.0)
    params["train_embedder"].update(
        batch_size=8,
        mini_batch_size=4,
        bf16=bf16,
        matryoshka_dims=[64, 32],
        learning_rate=1e-4,
        evaluator_batch_size=8,
        eval_steps=0.5,
        save_steps=0.5,
        logging_steps=1,
    )
    params["train_reranker"].update(
        batch_size=4, gradient_accumulation_steps=2, bf16=bf16, learning_rate=1e-4, eval_queries=4, eval_steps=0.5
    )
    params["evaluate"].update(batch_size=8, top_k=5, dims=[64, 32])
    params["publish"].update(truncate_dim=32)
    return params


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for folder in build(sys.argv[1]):
        print(folder)
    print(synthetic_dataset(Path(sys.argv[1]) / "dataset"))
