"""Generated queries (vdr/data/querygen.py) against a loopback OpenAI-compatible server that also fails, stalls and
answers badly, as real servers do."""

import hashlib
import json

import pytest

from tests.support.images import png
from tests.support.openai_server import ChatServer, Reply
from vdr.data.querygen import (
    DEFAULT_PROMPT,
    OpenAIChat,
    Page,
    ResponseCache,
    Settings,
    filter_queries,
    generate_queries,
    parse_queries,
    problems,
)


@pytest.mark.parametrize(
    "answer, queries",
    [
        (
            "how do I invert a matrix?\nwhat does solve return?",
            ["how do I invert a matrix?", "what does solve return?"],
        ),
        ("1. first query\n2) second query\n(3) third one", ["first query", "second query", "third one"]),
        ('- "quoted query"\n* starred query\n\u2022 bullet query', ["quoted query", "starred query", "bullet query"]),
        ("Here are 2 queries:\nQ1: alpha beta\nQuery 2: gamma delta", ["alpha beta", "gamma delta"]),
        ('["one query", "two query"]', ["one query", "two query"]),
        ('```json\n["fenced query"]\n```', ["fenced query"]),
        ('{"queries": ["in an object"]}', ["in an object"]),
        ("**1. bold numbered**", ["bold numbered"]),
        ("", []),
        ("Here are the queries:\n\n", []),
        ("[1, 2, 3]", []),
    ],
)
def test_answers_are_parsed_leniently(answer, queries):
    assert parse_queries(answer) == queries


def digest(image: bytes) -> str:
    return hashlib.sha256(image).hexdigest()


PAGES = [Page(id=f"page-{n}", image=png((n, 0, 0), (8, 8)), text=f"text of page {n}") for n in range(6)]


def fast_client(url: str, **overrides) -> OpenAIChat:
    options = dict(timeout_s=1.0, max_retries=2, backoff_s=0.01, max_backoff_s=0.05)
    return OpenAIChat(url, "test-model", **{**options, **overrides})


@pytest.mark.e2e  # a loopback server
def test_failures_retries_and_bad_answers_are_counted_by_page(tmp_path):
    """page 1: 503 then fine (retried); page 2: a stall past the timeout, then fine; page 3: 400 (not retried);
    page 4: malformed; page 5: empty; page 0: fine."""
    behaviour = {
        digest(PAGES[1].image): lambda attempt: Reply(503, "busy") if attempt == 0 else Reply(),
        digest(PAGES[2].image): lambda attempt: Reply(delay_s=2.0) if attempt == 0 else Reply(),
        digest(PAGES[3].image): lambda attempt: Reply(400, "image too large"),
        digest(PAGES[4].image): lambda attempt: Reply(text="Sure! Here are the queries:"),
        digest(PAGES[5].image): lambda attempt: Reply(text="  "),
    }
    with ChatServer(lambda page, attempt: behaviour.get(page, lambda a: Reply())(attempt)) as server:
        generated = generate_queries(
            PAGES, fast_client(server.url), Settings(model="test-model"), ResponseCache(tmp_path), concurrency=3
        )
        attempts = dict(server.attempts)
    outcome = {item.page_id: item.problem for item in generated}
    assert outcome == {
        "page-0": None,
        "page-1": None,
        "page-2": None,
        "page-3": "failed",
        "page-4": "malformed",
        "page-5": "empty",
    }
    assert attempts[digest(PAGES[1].image)] == 2 and attempts[digest(PAGES[3].image)] == 1  # 400: asked once
    assert "HTTP 400" in generated[3].detail and "image too large" in generated[3].detail
    assert generated[0].queries == ["what does this page explain?", "which example does this page give?"]
    assert problems(generated, "skip") == {"failed": 1, "malformed": 1, "empty": 1}
    with pytest.raises(
        RuntimeError, match=r"page 'page-3': no queries \(failed: HTTP 400.*generate.on_bad_page: skip"
    ):
        problems(generated, "error")


@pytest.mark.e2e  # a loopback server
def test_a_server_that_keeps_failing_fails_the_page_after_its_retries(tmp_path):
    with ChatServer(lambda page, attempt: Reply(500, "boom")) as server:
        [item] = generate_queries(PAGES[:1], fast_client(server.url), Settings(model="m"), ResponseCache(tmp_path))
        assert sum(server.attempts.values()) == 3  # 1 + max_retries
    assert item.problem == "failed" and "after 3 attempts" in item.detail


@pytest.mark.e2e  # a loopback server
def test_a_second_run_asks_nothing_and_a_changed_setting_asks_again(tmp_path):
    cache = ResponseCache(tmp_path / "cache")
    settings = Settings(model="test-model", queries_per_page=2)
    with ChatServer() as server:
        first = generate_queries(PAGES, fast_client(server.url), settings, cache)
        asked = len(server.requests)
        second = generate_queries(PAGES, fast_client(server.url), settings, cache)
        assert len(server.requests) == asked == len(PAGES)  # the second run sent no request
        assert [g.queries for g in second] == [g.queries for g in first] and all(g.cached for g in second)
        generate_queries(PAGES[:2], fast_client(server.url), Settings(model="test-model", temperature=0.1), cache)
        assert len(server.requests) == asked + 2  # another setting is another answer


@pytest.mark.e2e  # a loopback server
def test_the_request_carries_the_page_and_the_key_goes_only_in_the_header(tmp_path, monkeypatch):
    secret = "sk-test-not-a-real-key-1234"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    settings = Settings(model="test-model", queries_per_page=3, with_text_layer=True)
    with ChatServer(lambda page, attempt: Reply(401, "bad key") if attempt else Reply()) as server:
        generate_queries(PAGES[:1], fast_client(server.url), settings, ResponseCache(tmp_path / "cache"))
        page, authorization, body = server.requests[0]
    assert authorization == f"Bearer {secret}" and secret not in json.dumps(body)
    assert page == digest(PAGES[0].image) and body["model"] == "test-model" and body["seed"] == 42
    content = body["messages"][0]["content"]
    assert content[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert DEFAULT_PROMPT.replace("{n}", "3") in content[1]["text"] and "text of page 0" in content[1]["text"]
    assert not any(secret in path.read_text() for path in (tmp_path / "cache").rglob("*") if path.is_file())


def test_a_base_url_that_is_not_http_is_named():
    with pytest.raises(ValueError, match=r"generate.base_url: 'localhost:8000' is not an http\(s\) URL"):
        OpenAIChat("localhost:8000", "m")


def test_filters_count_what_each_rule_drops():
    from vdr.data.querygen import Generated

    generated = [
        Generated("a", ["a fine query about sorting", "short", "A fine  query about SORTING"]),
        Generated("b", ["x" * 400, "another fine query here"]),
        Generated("c", problem="empty"),
    ]
    kept, counts = filter_queries(generated, min_chars=10, max_chars=300)
    assert kept == [("a", "a fine query about sorting"), ("b", "another fine query here")]
    assert counts == {"generated": 5, "too_short": 1, "too_long": 1, "duplicate": 1, "kept": 2}
