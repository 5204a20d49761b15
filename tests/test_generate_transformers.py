"""Generated queries (vdr/data/querygen.py) from a local transformers model: a tiny random Qwen3-VL chat model, built
offline. Its answers are noise, so these tests check the path (batches, seeding, caching, failures), not the text."""

import pytest
import torch

from tests.support.images import page_png
from vdr.data.querygen import (
    Generated,
    GenerationError,
    Page,
    ResponseCache,
    Settings,
    TransformersChat,
    generate_queries,
)

# different sizes, so the pages of a batch have different numbers of image tokens and are padded
PAGES = [
    Page(id="page-0", image=page_png(0, 64, 64), text="text of page 0"),
    Page(id="page-1", image=page_png(1, 96, 64)),
    Page(id="page-2", image=page_png(2, 64, 128)),
]
SETTINGS = Settings(model="tiny", max_tokens=8, with_text_layer=True)


def count_generate_calls(chat: TransformersChat, monkeypatch) -> list:
    calls = []
    generate = chat.network.generate

    def counted(**inputs):
        calls.append(len(inputs["input_ids"]))
        return generate(**inputs)

    monkeypatch.setattr(chat.network, "generate", counted)
    return calls


def test_pages_are_answered_in_batches_the_same_way_twice_and_cached(tiny_chat_model, tmp_path, monkeypatch):
    chat = TransformersChat(tiny_chat_model, batch_size=2, device="cpu", dtype="float32", max_pixels=64 * 128)
    assert chat.model == tiny_chat_model and chat.processor.image_processor.size["longest_edge"] == 64 * 128
    settings = Settings(**{**SETTINGS.__dict__, "model": chat.model})
    calls = count_generate_calls(chat, monkeypatch)

    answers = chat.complete_batch(PAGES, settings)
    assert len(answers) == 3 and all(isinstance(answer, str) for answer in answers)
    assert chat.complete_batch(PAGES, settings) == answers  # seeded sampling: the same answers again
    calls.clear()

    cache = ResponseCache(tmp_path / "cache")
    generated = generate_queries(PAGES, chat, settings, cache)
    assert calls == [2, 1]  # 3 pages, batch_size 2: two generate calls
    assert [item.page_id for item in generated] == ["page-0", "page-1", "page-2"]
    assert all(isinstance(item, Generated) and not item.cached for item in generated)
    assert all(item.problem in (None, "malformed", "empty") for item in generated)  # noise, but never "failed"
    assert all(isinstance(query, str) for item in generated for query in item.queries)

    again = generate_queries(PAGES, chat, settings, cache)
    assert calls == [2, 1]  # everything came from the cache
    assert all(item.cached for item in again)
    assert [(g.queries, g.problem) for g in again] == [(g.queries, g.problem) for g in generated]

    calls.clear()
    generate_queries(PAGES, chat, settings, ResponseCache(tmp_path / "fresh"))
    assert calls == [2, 1]


def test_a_bad_image_fails_its_page_and_a_failing_batch_fails_its_pages(tiny_chat_model, tmp_path, monkeypatch):
    chat = TransformersChat(tiny_chat_model, batch_size=2, device="cpu")
    settings = Settings(**{**SETTINGS.__dict__, "model": chat.model, "temperature": 0.0})  # greedy
    broken = Page(id="broken", image=b"not an image")
    answers = chat.complete_batch([broken, PAGES[0]], settings)
    assert isinstance(answers[0], GenerationError) and "'broken'" in str(answers[0])
    assert isinstance(answers[1], str)

    cache = ResponseCache(tmp_path / "cache")

    def out_of_memory(**inputs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with monkeypatch.context() as patch:
        patch.setattr(chat.network, "generate", out_of_memory)
        generated = generate_queries(PAGES, chat, settings, cache)
    assert [item.problem for item in generated] == ["failed"] * 3
    assert "OutOfMemoryError" in generated[0].detail and "generate.batch_size" in generated[0].detail

    calls = count_generate_calls(chat, monkeypatch)
    generated = generate_queries(PAGES, chat, settings, cache)  # failures are not cached: asked again
    assert calls == [2, 1] and "failed" not in [item.problem for item in generated]


def test_an_unknown_dtype_is_named(tiny_chat_model):
    with pytest.raises(ValueError, match="generate.dtype: 'bfloat17' is not a torch dtype"):
        TransformersChat(tiny_chat_model, device="cpu", dtype="bfloat17")
