"""A stand-in for an OpenAI-compatible chat-completions server, for trying the documents path (`generate`)
without a vision-language model.

    python benchmarks/query_server.py --port 8000            # then generate.base_url: http://127.0.0.1:8000/v1
    python benchmarks/query_server.py --port 8000 --quiet    # without a log line per request

It serves POST /v1/chat/completions and GET /v1/models on 127.0.0.1 (standard library only, plus pytesseract and
Pillow for OCR). For each request it writes N queries, N being the first integer in the prompt (2 when there is none):
from the page's text layer when the request carries one (after "The page's text layer, for reference:"), else
from Tesseract's OCR of the page image, else it answers an empty string (which the pipeline counts as an empty
answer). Each query is one sentence of the page boiled down to 3-7 of its most distinctive words (no stopwords,
longer and less repeated words first, lowercase), sometimes put in a template ("how to ...", "what is ..."),
and never a verbatim substring of the page; different queries of a page come from different sentences. The
answer depends only on (page text, seed, query index): the request's temperature and top_p are ignored.

These queries are keyword paraphrases of the text layer, not what a vision-language model writes: they read
nothing from figures or layout, and a retriever that matches words will find their pages easily. The server is
for a try-out of the plumbing (requests, caching, parsing, filtering, training on real PDFs) and for tests,
not for producing training data.

From Python (tests):

    from benchmarks.query_server import running
    with running() as server:                      # a free port; server.url is "http://127.0.0.1:PORT/v1"
        chat = OpenAIChat(server.url, "stand-in")

`serve(port)` starts one in a background thread and returns it (stop it with `.close()`); `make_queries(text,
n, seed)` is the query writer on its own.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import math
import random
import re
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_MODEL = "stand-in"
DEFAULT_QUERIES = 2
MAX_QUERIES = 50
TEXT_LAYER_MARKER = "The page's text layer, for reference:\n"
MIN_WORDS, MAX_WORDS = 3, 7
TEMPLATES = ["{}", "{}", "{}", "how to {}", "how to {}", "what is {}", "what is {}", "{} example"]

# English function words and words too generic to search for, with the commonest German and French function
# words (some of the collected documentation is in those languages).
STOPWORDS = frozenset(
    """
    a about above after again against all almost along already also although always am among an and another any
    anyone anything are around as at away back be became because become becomes been before being below between
    both but by can cannot could did do does doing done down during each either else enough etc even ever every
    few following for from further get gets given gives go goes got had has have having he her here hers herself
    him himself his how however i if in into is it its itself just last least less let like made make makes many
    may me might more most much must my myself need needs neither never new next no nor not now of off often on
    once one only onto or other others otherwise our ours ourselves out over own per perhaps put rather really
    same see seen several shall she should show shown since so some something still such than that the their
    theirs them themselves then there therefore these they thing things this those though through thus to too
    two under until up upon us use used uses using usually very via was way we well were what whatever when
    where whether which while who whom whose why will with within without would yet you your yours yourself
    yourselves able al cf eg ie vs page pages section chapter figure table first second third
    example examples case cases note part set sets value values ways time times number numbers
    http https www com org net pdf html
    aber als am an auch auf aus bei bis das dass dem den der des die dies diese dieser doch durch ein eine einem
    einen einer eines er es für hat ich ihr im ist kann man mit nach nicht noch nur oder sein sich sie sind so
    über um und uns von vor war wenn werden wie wird wir zu zum zur
    au aux avec ce ces dans de des du elle en est et il ils la le les leur mais ne nous on ou par pas plus pour
    qu que qui sa se ses son sont sur un une vous
    """.split()
)

_WORD = re.compile(r"[^\W\d_](?:[\w'’-]*[^\W_])?")
_URL = re.compile(r"(?:https?://|www\.)\S+|\S+@\S+\.\w+")
_LEADER = re.compile(r"(?:\s*\.){3,}\s*\d*")  # table-of-contents dot leaders and the page number after them
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n\s*\n")
_HYPHEN_MARKS = re.compile("[\ufffe\u00ad\x02]")  # pdfium and TeX mark soft hyphens inside a word
_INTEGER = re.compile(r"\d+")
_WINDOW = 30  # a "sentence" without punctuation (a table, a list) is read in windows of this many words


# --- the queries ---------------------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Lowercase, whitespace collapsed: how the pipeline compares a query with its page (stages/render.py)."""
    return re.sub(r"\s+", " ", text).strip().lower()


def _words(text: str) -> list[str]:
    return [w.lower().strip("'’-") for w in _WORD.findall(text)]


def _content(words: list[str]) -> list[str]:
    return [w for w in words if len(w) >= 3 and w not in STOPWORDS and sum(c.isalpha() for c in w) >= 3]


def _clean(text: str) -> str:
    return _URL.sub(" ", _HYPHEN_MARKS.sub("", text))


def _sentences(text: str) -> list[str]:
    text = _LEADER.sub(".\n", text)
    pieces = []
    for chunk in _SENTENCE_END.split(text.replace("\r\n", "\n")):
        words = chunk.split()
        pieces += [" ".join(words[i : i + _WINDOW]) for i in range(0, len(words), _WINDOW)]
    return pieces


def _word_score(word: str, count: int) -> float:
    """Longer words first, words the page repeats (its running heads, its commonest terms) less."""
    score = min(len(word), 12) / (1 + 0.5 * math.log(max(count, 1)))
    return score * (0.5 if any(c.isdigit() for c in word) else 1.0)


def make_queries(text: str, n: int = DEFAULT_QUERIES, seed: int = 0) -> list[str]:
    """Up to n queries for a page whose text is `text`, each from a different sentence where the page has n,
    none a verbatim substring of the page (case and spacing ignored). Query i depends on (text, seed, i) only
    (and on the queries before it when it would repeat one of them), so it is the same whatever n is."""
    page = normalise(text)
    text = _clean(text)
    counts = Counter(_content(_words(text)))
    if not counts:
        return []
    candidates = []
    for sentence in _sentences(text):
        words = _words(sentence)
        content = list(dict.fromkeys(_content(words)))
        if len(content) >= MIN_WORDS and len(content) >= 0.4 * len(words):  # prose, not code or a formula
            scores = sorted((_word_score(w, counts[w]) for w in content), reverse=True)
            candidates.append((sum(scores[:5]), content))
    if not candidates:  # no sentence with enough words: the page's words as one "sentence"
        candidates = [(1.0, list(counts))]
        if len(counts) < MIN_WORDS:
            return []
    digest = hashlib.sha256(text.encode()).hexdigest()
    order = random.Random(f"{digest}:{seed}")
    ranked = [c for _, _, c in sorted(((s * order.uniform(0.5, 1.0), i, c) for i, (s, c) in enumerate(candidates)))]
    ranked.reverse()  # the best sentences first, shuffled a little by the seed
    queries: list[str] = []
    for index in range(n):
        rng = random.Random(f"{digest}:{seed}:{index}")
        for attempt in range(len(ranked)):
            query = _query(ranked[(index + attempt) % len(ranked)], counts, page, rng)
            if query and query not in queries:
                queries.append(query)
                break
    return queries


def _query(content: list[str], counts: Counter, page: str, rng: random.Random) -> str | None:
    """3-7 of the sentence's most distinctive words, in its order or with the best word first, maybe in a
    template; None when every arrangement tried can be read verbatim on the page."""
    k = min(len(content), MAX_WORDS, rng.choice([3, 4, 4, 5, 5, 6, 7]))
    best = sorted(content, key=lambda w: (-_word_score(w, counts[w]), content.index(w)))[:k]
    kept = [w for w in content if w in best]  # the sentence's order
    if rng.random() < 0.4:
        kept.remove(best[0])
        kept.insert(0, best[0])
    template = rng.choice(TEMPLATES)
    for arrangement in (kept, kept[1:] + kept[:1], kept[::-1]):
        for form in (template, "how to {}", "what is {}"):
            query = form.format(" ".join(arrangement))
            if normalise(query) not in page:
                return query
    return None


# --- the requests -------------------------------------------------------------------------------------------


def _parts(body: dict) -> tuple[str, list[str]]:
    """The text and the image URLs of the last user message."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role", "user") == "user"]
    if not messages:
        raise ValueError("the request has no user message")
    content = messages[-1].get("content")
    if isinstance(content, str):
        return content, []
    texts, images = [], []
    for part in content or []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            images.append(image.get("url", "") if isinstance(image, dict) else str(image or ""))
    return "\n".join(texts), images


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        print(f"query_server: {message}", file=sys.stderr, flush=True)


def ocr(image_url: str) -> str:
    """Tesseract's reading of a data: URL image; "" (with one warning) when it cannot be read."""
    match = re.match(r"data:image/[\w.+-]+;base64,(.*)", image_url, re.DOTALL)
    if not match:
        _warn_once("only data: URL images are read; answering without text")
        return ""
    try:
        import pytesseract
        from PIL import Image

        image = Image.open(io.BytesIO(base64.b64decode(match.group(1))))
        # the process's environment is left alone: an OMP_THREAD_LIMIT set here would reach every process started
        # after it (in the test session: the stages, whose torch then trained on NaN)
        return pytesseract.image_to_string(image.convert("RGB"), lang="eng")
    except ImportError as error:
        _warn_once(f"OCR needs pytesseract and Pillow ({error}); answering without text")
    except Exception as error:  # tesseract missing or failing, an undecodable image
        _warn_once(f"OCR failed ({type(error).__name__}: {error}); answering without text")
    return ""


def answer(body: dict) -> str:
    """The assistant message for a chat-completions request body: the queries, one per line."""
    text, images = _parts(body)
    prompt, marker, layer = text.partition(TEXT_LAYER_MARKER)
    number = _INTEGER.search(prompt)
    n = min(max(int(number.group()), 1), MAX_QUERIES) if number else DEFAULT_QUERIES
    page = layer if marker and layer.strip() else (ocr(images[0]) if images else "")
    seed = body.get("seed")
    return "\n".join(make_queries(page, n, seed if isinstance(seed, int) else 0))


# --- the server ---------------------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    server: QueryServer
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": {"message": message, "type": "invalid_request_error", "code": status}})

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            model = {"id": self.server.model, "object": "model", "created": 0, "owned_by": "vdr-stand-in"}
            self._send(200, {"object": "list", "data": [model]})
        else:
            self._error(404, f"no such path: GET {self.path}")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            return self._error(404, f"no such path: POST {self.path}")
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("the body is not a JSON object")
            if body.get("stream"):
                raise ValueError("the stand-in does not stream; send stream: false")
            content = answer(body)
            prompt_tokens = len(_parts(body)[0].split())  # words, not tokens: there is no tokenizer
        except ValueError as error:
            return self._error(400, str(error))
        completion_tokens = len(content.split())
        self._send(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model") or self.server.model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )

    def log_message(self, format: str, *args) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)


class QueryServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, model: str = DEFAULT_MODEL, quiet: bool = False):
        super().__init__((host, port), Handler)
        self.model, self.quiet = model, quiet
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL to give OpenAIChat (generate.base_url), e.g. http://127.0.0.1:8000/v1."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def close(self) -> None:
        """Stop serving (when started by `serve`) and free the port."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()


def serve(port: int = 0, host: str = "127.0.0.1", model: str = DEFAULT_MODEL, quiet: bool = True) -> QueryServer:
    """A server answering in a background thread; port 0 takes a free one (see `.url`). Stop it with `.close()`."""
    server = QueryServer(host, port, model, quiet)
    server._thread = threading.Thread(target=server.serve_forever, name="query-server", daemon=True)
    server._thread.start()
    return server


@contextlib.contextmanager
def running(port: int = 0, host: str = "127.0.0.1", model: str = DEFAULT_MODEL) -> Iterator[QueryServer]:
    """`serve`, closed when the block ends."""
    server = serve(port, host, model)
    try:
        yield server
    finally:
        server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="the model name GET /v1/models lists")
    parser.add_argument("--quiet", action="store_true", help="no log line per request")
    args = parser.parse_args(argv)
    server = QueryServer(args.host, args.port, args.model, args.quiet)
    print(f"query stand-in serving {server.url} (POST /v1/chat/completions, GET /v1/models)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
