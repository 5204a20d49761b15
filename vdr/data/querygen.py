"""Queries for pages that have none: a vision-language model is shown each page and asked for the questions a
user would type that this page answers (the reference dataset's queries were written this way).

    chat = OpenAIChat(base_url="http://localhost:8000/v1", model="Qwen/Qwen3-VL-8B-Instruct")
    # or, in this process: chat = TransformersChat("Qwen/Qwen3-VL-2B-Instruct", batch_size=8)
    settings = Settings(model=chat.model, queries_per_page=2)
    generated = generate_queries(pages, chat, settings, ResponseCache(Path(".cache/generate")), concurrency=4)
    kept, counts = filter_queries(generated, min_chars=10, max_chars=300)

- `OpenAIChat` talks to any OpenAI-compatible chat-completions server (vLLM, TGI, llama.cpp's server,
  Ollama, a hosted API): the page goes in as a base64 PNG data URL, optionally with its text layer. The API
  key is read from the environment (OPENAI_API_KEY) and only sent in the Authorization header; it is never
  part of a message, a cache file or an error. Pages are asked `concurrency` at a time, from threads.
- `TransformersChat` runs a vision-language chat model here, with transformers (AutoProcessor +
  AutoModelForImageTextToText, on the GPU when there is one): pages are answered `batch_size` at a time by
  one `generate` call, seeded with Settings.seed. A batch that fails (out of memory, say) fails its pages,
  not the run.
- Every answer is cached on disk under the hash of (page, model, prompt, settings), written atomically, so a
  killed or repeated run never asks twice.
- `timeout_s` bounds a whole request, from connecting to the answer's last byte, not only each read: a server
  that trickles its answer a byte at a time is cut off at the deadline (a timeout, retried as one).
- Timeouts, connection errors, HTTP 429 and 5xx are retried with exponential backoff (a server's
  Retry-After is honoured); other HTTP errors fail the page at once. A page whose request keeps failing, or
  whose answer holds no usable query, is counted and reported with its id, never dropped silently:
  `on_bad_page: error` stops at the first, `skip` counts it.
- An answer is checked before it is cached: a body that is not valid UTF-8 (or the charset it declares) or not
  JSON, and a `message.content` that is neither text nor a list of text parts (null, a number, an object, a
  part whose text is null), fail the page with the reason, and are not cached: the next run asks again.
- The API key is redacted (as <OPENAI_API_KEY>) from every text that comes back from the server before it is
  printed, cached or written: an error body that echoes the key does not carry it into a message.
- Answers are parsed leniently, as real servers answer (`parse_queries`): a JSON list (also inside a ```json
  fence or as {"queries": [...]}), else one query per line with numbering, bullets and quotes stripped.
- A generated query is data, and only a question is kept (`filter_queries`, `not_a_query`): text that speaks
  to the model instead (prompt injection), a shell command or a line of code is dropped and counted.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from tqdm.auto import tqdm
from urllib3.connection import HTTPConnection, HTTPSConnection

from vdr.io.files import write_json

DEFAULT_PROMPT = (
    "You see one page of a document. Write {n} different search queries that a user would type into a search "
    "engine to find exactly this page: specific questions that this page answers and few other pages would. "
    "Use your own words; do not copy phrases from the page. One query per line, no numbering, nothing else."
)


API_KEY_VARIABLE = "OPENAI_API_KEY"


REDACTED = f"<{API_KEY_VARIABLE}>"  # what stands for the key in any text that came back from the server


MIN_SECRET_CHARS = 8  # a shorter "key" (EMPTY, none: what local servers take) is not redacted from answers


RETRIED_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class GenerationError(RuntimeError):
    """A request that failed for good (after its retries), naming the page and the server's reason. `cause` is the
    kind of failure in a few words ("HTTP 401", "timeout", "malformed answer"), as metrics count them."""

    def __init__(self, reason: str, cause: str = "error"):
        super().__init__(reason)
        self.cause = cause


def redact(text: str, key: str) -> str:
    """`text` with every occurrence of the API key replaced by <OPENAI_API_KEY>."""
    return text.replace(key, REDACTED) if key else text


@dataclass(frozen=True)
class Settings:
    """Everything that changes an answer: part of every cache key."""

    model: str
    queries_per_page: int = 2
    prompt: str = DEFAULT_PROMPT
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 256
    seed: int = 42
    with_text_layer: bool = False  # the page's text layer goes in after the image, for servers that read badly

    def message(self) -> str:
        return self.prompt.replace("{n}", str(self.queries_per_page))


@dataclass(frozen=True)
class Page:
    id: str
    image: bytes  # PNG (or JPEG) bytes
    text: str = ""

    def digest(self) -> str:
        return hashlib.sha256(self.image + b"\0" + self.text.encode()).hexdigest()


@dataclass
class Generated:
    """One page's outcome: its queries, or why it has none (`problem`: failed, empty, malformed)."""

    page_id: str
    queries: list[str] = field(default_factory=list)
    problem: str | None = None
    detail: str = ""
    cached: bool = False
    cause: str = ""  # a failed page's kind of failure (GenerationError.cause)


_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


_LEADER = re.compile(
    r"^\s*(?:(?:query|question|q)\s*\d*\s*[:.)-]\s*|\d{1,3}\s*[.):-]\s*|\(\d{1,3}\)\s*|[-*\u2022\u2013]\s+|#+\s+)",
    re.IGNORECASE,
)


_QUOTES = "\"'\u201c\u201d\u2018\u2019`"


def _clean(line: str) -> str:
    line = line.strip().strip("*").strip()  # markdown bold around the whole line
    for _ in range(2):  # "1. "Query"" and "- Q1: ..." both
        line = _LEADER.sub("", line, count=1).strip()
    if len(line) >= 2 and line[0] in _QUOTES and line[-1] in _QUOTES:
        line = line[1:-1].strip()
    return line.strip("*").strip()


def parse_queries(answer: str) -> list[str]:
    """The queries in a model's answer; [] when nothing usable is left.

    A JSON list of strings (or {"queries": [...]}, possibly in a ```json fence) is taken as it is; otherwise each
    non-empty line is a query once numbering ("1.", "2)", "Q3:"), bullets and surrounding quotes are stripped.
    Preambles a chat model adds ("Here are 2 queries:") end with a colon and are dropped."""
    text = _FENCE.sub("", answer.strip()).strip()
    if text[:1] in "[{":
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            value = next((v for v in value.values() if isinstance(v, list)), None)
        if isinstance(value, list):
            return [_clean(v) for v in value if isinstance(v, str) and _clean(v)]
    lines = [_clean(line) for line in text.splitlines()]
    return [line for line in lines if line and not line.endswith(":") and line not in ("[", "]", "{", "}")]


class ResponseCache:
    """The raw answers, one JSON file per (page, model, prompt, settings), written atomically."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    @staticmethod
    def key(page: Page, settings: Settings) -> str:
        payload = json.dumps({"page": page.digest(), **asdict(settings)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        path = self.path(key)
        if not path.exists():
            return None
        try:
            answer = json.loads(path.read_text(encoding="utf-8"))["answer"]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # an unreadable entry is asked again and rewritten
        return answer if isinstance(answer, str) else None  # so is one that is not text (an older version's)

    def put(self, key: str, answer: str) -> None:
        if not isinstance(answer, str):
            raise TypeError(f"the answer cache holds text, not {type(answer).__name__}")
        path = self.path(key)
        try:
            write_json(path, {"answer": answer})
        except OSError as error:  # a full disk says "[Errno 28] No space left on device" and names no file
            message = (
                f"the answer cache could not write {path}: {error.strerror or error}; free space there, or move the "
                "cache elsewhere (VDR_GENERATE_CACHE)"
            )
            raise (OSError(error.errno, message) if error.errno else OSError(message)) from None


def _image_url(image: bytes) -> str:
    kind = "jpeg" if image[:3] == b"\xff\xd8\xff" else "png"
    return f"data:image/{kind};base64,{base64.b64encode(image).decode()}"


class _Deadline:
    """Shuts the sockets of one request down once `seconds` have passed, which ends a read blocked on them.

    requests' timeout bounds each socket read, not the request: a server that sends a byte every half second never
    trips it. A timer thread does what no read timeout can."""

    def __init__(self, seconds: float):
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed
        pass


class _WatchedConnection:
    """A urllib3 connection that hands its socket to the request's _Deadline as soon as it is connected."""

    def __init__(self, *args, deadline: _Deadline | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.deadline = deadline

    def connect(self):
        super().connect()
        if self.deadline is not None:
            self.deadline.watch(self.sock)


class _WatchedHTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


_WATCHED = {HTTPConnection: _WatchedHTTPConnection, HTTPSConnection: _WatchedHTTPSConnection}


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter, its connections watched by one request's deadline (proxied ones too)."""

    def __init__(self, deadline: _Deadline):
        self.deadline = deadline
        super().__init__()

    def get_connection_with_tls_context(self, *args, **kwargs):
        pool = super().get_connection_with_tls_context(*args, **kwargs)
        pool.ConnectionCls = _WATCHED.get(pool.ConnectionCls, pool.ConnectionCls)
        if issubclass(pool.ConnectionCls, _WatchedConnection):
            pool.conn_kw["deadline"] = self.deadline
        return pool


class RequestDeadline(requests.Timeout):
    """The whole request (connecting, sending, waiting, reading the answer) took longer than its deadline."""


def request_within(method: str, url: str, timeout_s: float, **kwargs) -> requests.Response:
    """requests.request(method, url, **kwargs), the whole of it within `timeout_s` seconds: RequestDeadline (a
    requests.Timeout) past it, however slowly the server keeps sending. Each socket read is bounded by `timeout_s`
    too, as requests does."""
    with _Deadline(timeout_s) as deadline, requests.Session() as session:
        adapter = _DeadlineAdapter(deadline)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        try:
            response = session.request(method, url, timeout=timeout_s, **kwargs)
        except requests.RequestException:
            if not deadline.expired:
                raise
            response = None
    if deadline.expired:  # even an answer that seemed whole: the shut socket may have ended it early
        raise RequestDeadline(f"no complete answer within {timeout_s:g} s")
    return response


_JSON_TYPES = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "text"}


def _shape(value) -> str:
    """A JSON value's kind and its start, for an error message: `a number (5)`, `an object ({"a": 1})`."""
    kind = _JSON_TYPES.get(type(value)) or ("a list" if isinstance(value, list) else "an object")
    return kind if value is None else f"{kind} ({json.dumps(value, ensure_ascii=False)[:80]})"


def _charset(content_type: str) -> str:
    found = re.search(r"charset\s*=\s*\"?([\w.:-]+)", content_type, re.IGNORECASE)
    return found.group(1) if found else "utf-8"


class OpenAIChat:
    """POST {base_url}/chat/completions with the page image; retries what a busy server answers with."""

    def __init__(
        self,
        base_url: str,
        model: str,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
    ):
        if not re.match(r"^https?://", base_url):
            raise ValueError(f"generate.base_url: {base_url!r} is not an http(s) URL (e.g. http://localhost:8000/v1)")
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model = model
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s

    @staticmethod
    def _key() -> str:
        return os.environ.get(API_KEY_VARIABLE, "")

    def _headers(self) -> dict:
        key = self._key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def request_body(self, page: Page, settings: Settings) -> dict:
        content = [{"type": "image_url", "image_url": {"url": _image_url(page.image)}}]
        text = settings.message()
        if settings.with_text_layer and page.text.strip():
            text += "\n\nThe page's text layer, for reference:\n" + page.text
        content.append({"type": "text", "text": text})
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "max_tokens": settings.max_tokens,
            "seed": settings.seed,
        }

    def probe(self, timeout_s: float = 30.0) -> list[str] | None:
        """GET {base_url}/models with the key, as the chat requests go: ConnectionError when nothing answers,
        PermissionError when the server refuses the key (401, 403); else the model names it lists (None when it
        lists none: not every server has /models)."""
        url = self.base_url + "/models"
        try:
            response = request_within("GET", url, min(self.timeout_s, timeout_s), headers=self._headers())
        except requests.RequestException as error:
            raise ConnectionError(
                f"generate.base_url: nothing answers at {self.base_url} ({type(error).__name__}); start the "
                "OpenAI-compatible server there, or set -S generate.base_url=URL"
            ) from None
        if response.status_code in (401, 403):
            given = f"the key in {API_KEY_VARIABLE}" if self._key() else f"no key ({API_KEY_VARIABLE} is not set)"
            raise PermissionError(
                f"{self._http_error(response, url)}: the server refuses {given}; set {API_KEY_VARIABLE} to a key "
                f"it accepts, or check generate.base_url"
            )
        try:
            listed = response.json()["data"] if response.status_code == 200 else None
            return [entry["id"] for entry in listed] if isinstance(listed, list) else None
        except (ValueError, KeyError, TypeError):
            return None

    def complete(self, page: Page, settings: Settings) -> str:
        """The answer's text; GenerationError when the server keeps failing, refuses, or answers malformed."""
        body = self.request_body(page, settings)
        reason, cause = "", ""
        for attempt in range(self.max_retries + 1):
            wait = min(self.backoff_s * 2**attempt, self.max_backoff_s)
            try:
                response = request_within("POST", self.url, self.timeout_s, json=body, headers=self._headers())
            except RequestDeadline:
                reason = f"no complete answer from {self.url} within {self.timeout_s:g} s (generate.timeout_s)"
                cause = "timeout"
            except (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
                reason = f"{type(error).__name__} from {self.url}"
                cause = "timeout" if isinstance(error, requests.Timeout) else "connection error"
            except requests.RequestException as error:
                raise GenerationError(f"{type(error).__name__} from {self.url}", cause="request error") from None
            else:
                if response.status_code == 200:
                    return self._answer(response)
                reason, cause = self._http_error(response, self.url), f"HTTP {response.status_code}"
                if response.status_code not in RETRIED_STATUS:
                    raise GenerationError(reason, cause)
                wait = max(wait, _retry_after(response))
            if attempt < self.max_retries:
                time.sleep(min(wait, self.max_backoff_s))
        raise GenerationError(f"{reason} (after {self.max_retries + 1} attempts)", cause)

    def _http_error(self, response, url: str) -> str:
        """`HTTP 401 from URL: 'the body's start'`, the key redacted before the body is cut short (so that no part
        of it is left either)."""
        return f"HTTP {response.status_code} from {url}: {redact(response.text, self._key())[:200]!r}"

    def _malformed(self, what: str) -> GenerationError:
        return GenerationError(
            f"{self.url} answered {what}; the answer was not cached, the page is asked again on the next run",
            cause="malformed answer",
        )

    def _answer(self, response) -> str:
        """The text of a 200 answer, checked: GenerationError for a body that does not decode or is not JSON, and
        for a message.content that is neither text nor a list of text parts. The key is redacted from it."""
        charset = _charset(response.headers.get("Content-Type", ""))
        try:
            text = response.content.decode("utf-8-sig" if charset.lower() in ("utf-8", "utf8") else charset)
        except LookupError:
            raise self._malformed(f"in charset {charset!r}, which Python does not know") from None
        except UnicodeDecodeError as error:
            bad = response.content[error.start : error.start + 1]
            raise GenerationError(
                f"{self.url} answered with a body that is not valid {charset} (byte {bad!r} at offset {error.start}); "
                "the answer was not cached, the page is asked again on the next run",
                cause="undecodable answer",
            ) from None
        key = self._key()
        try:
            payload = json.loads(text)
        except ValueError as error:
            raise self._malformed(f"with a body that is not JSON ({error}): {redact(text, key)[:100]!r}") from None
        try:
            message = payload["choices"][0]["message"]
            content = message["content"]
        except (KeyError, IndexError, TypeError) as error:
            raise self._malformed(
                f"without choices[0].message.content ({type(error).__name__}: {redact(str(error), key)[:100]})"
            ) from None
        if isinstance(content, list):  # some servers answer with content parts; parts other than text are skipped
            texts = []
            for part in content:
                if isinstance(part, dict) and part.get("type", "text") != "text":
                    continue
                if not (isinstance(part, dict) and isinstance(part.get("text"), str)):
                    what = f"that is {_shape(part)}"
                    if isinstance(part, dict):
                        what = f"whose text is {_shape(part.get('text'))}"
                    raise self._malformed(
                        f"with a content part {redact(what, key)}, not {{'type': 'text', 'text': '...'}}"
                    )
                texts.append(part["text"])
            content = "".join(texts)
        if not isinstance(content, str):
            refusal = message.get("refusal")
            why = f" (the model refused: {redact(refusal, key)[:100]!r})" if isinstance(refusal, str) else ""
            raise self._malformed(
                f"with message.content {redact(_shape(content), key)}{why}, not text or a list of text parts"
            )
        return redact(content, key) if len(key) >= MIN_SECRET_CHARS else content


def _retry_after(response) -> float:
    try:
        return float(response.headers.get("Retry-After", 0))
    except ValueError:
        return 0.0


def _device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class TransformersChat:
    """A vision-language chat model (e.g. Qwen/Qwen3-VL-2B-Instruct) run here with transformers, pages in batches.

    `model` is a model id or a local folder; `dtype` is a torch dtype name or "auto" (the checkpoint's);
    `device` "auto" is cuda when there is one, else cpu; `max_pixels` caps the image processor's resolution."""

    def __init__(
        self, model: str, batch_size: int = 8, device: str = "auto", dtype: str = "auto", max_pixels: int | None = None
    ):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        if batch_size < 1:
            raise ValueError(f"generate.batch_size must be at least 1, got {batch_size}")
        self.model = model  # the name, as it goes into Settings.model and so into every cache key
        self.batch_size = batch_size
        self.device = _device(device)
        self.processor = AutoProcessor.from_pretrained(model)
        if max_pixels is not None:  # Qwen-VL image processors keep shortest_edge <= an image's pixels <= longest_edge
            least = min(self.processor.image_processor.size["shortest_edge"], max_pixels)
            self.processor.image_processor.size = {"shortest_edge": least, "longest_edge": max_pixels}
        self.processor.tokenizer.padding_side = "left"  # the answers of a batch all start at the same position
        weights_dtype = dtype if dtype == "auto" else getattr(torch, dtype, None)
        if not (weights_dtype == "auto" or isinstance(weights_dtype, torch.dtype)):
            raise ValueError(f"generate.dtype: {dtype!r} is not a torch dtype (e.g. auto, bfloat16, float32)")
        self.network = AutoModelForImageTextToText.from_pretrained(model, dtype=weights_dtype, device_map=self.device)
        self.network.eval()

    def messages(self, page: Page, image, settings: Settings) -> list[dict]:
        """The chat for one page: its image, then the prompt (and its text layer, as OpenAIChat sends it)."""
        text = settings.message()
        if settings.with_text_layer and page.text.strip():
            text += "\n\nThe page's text layer, for reference:\n" + page.text
        return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]}]

    def complete_batch(self, pages: list[Page], settings: Settings) -> list[str | GenerationError]:
        """Per page, in order: the answer's text, or a GenerationError saying why that page has none.

        A page whose image does not decode fails alone; a failing `generate` (out of memory, say) fails its whole
        batch. Nothing is raised for either, so the other batches go on. Sampling (temperature > 0) is seeded with
        settings.seed before each batch: the same pages in the same batches give the same answers."""
        from PIL import Image

        outcomes: list[str | GenerationError | None] = [None] * len(pages)
        images = {}
        for index, page in enumerate(pages):
            try:
                with Image.open(io.BytesIO(page.image)) as image:
                    images[index] = image.convert("RGB")
            except Exception as error:  # whatever the bytes are, this page has no image to show
                outcomes[index] = GenerationError(f"page {page.id!r}: image does not decode ({error!r})")
        if images:
            indices = list(images)
            try:
                answers = self._generate([pages[i] for i in indices], [images[i] for i in indices], settings)
            except (RuntimeError, ValueError) as error:  # torch.OutOfMemoryError is a RuntimeError
                reason = f"{type(error).__name__} in a batch of {len(indices)} on {self.device}: {str(error)[:300]}"
                if "out of memory" in str(error).lower():
                    reason += " (try a smaller generate.batch_size or max_pixels)"
                answers = [GenerationError(reason)] * len(indices)
            for index, answer in zip(indices, answers, strict=True):
                outcomes[index] = answer
        return outcomes

    def _generate(self, pages: list[Page], images: list, settings: Settings) -> list[str]:
        import torch

        chats = [self.messages(page, image, settings) for page, image in zip(pages, images)]
        prompts = [
            self.processor.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) for chat in chats
        ]
        inputs = self.processor(text=prompts, images=images, padding=True, return_tensors="pt").to(self.device)
        sampling = {"do_sample": False}
        if settings.temperature > 0:
            sampling = {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p}
        torch.manual_seed(settings.seed)
        with torch.inference_mode():
            output = self.network.generate(
                **inputs,
                max_new_tokens=settings.max_tokens,
                pad_token_id=self.processor.tokenizer.pad_token_id,
                **sampling,
            )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True)


def _generated(page: Page, answer: str | GenerationError, settings: Settings, cached: bool) -> Generated:
    """A page's outcome from its answer (or from the error that left it without one)."""
    if isinstance(answer, GenerationError):
        return Generated(page.id, problem="failed", detail=str(answer), cause=answer.cause)
    if not answer.strip():
        return Generated(page.id, problem="empty", cached=cached)
    queries = parse_queries(answer)
    if not queries:
        return Generated(page.id, problem="malformed", detail=answer[:200], cached=cached)
    return Generated(page.id, queries=queries[: settings.queries_per_page], cached=cached)


def generate_queries(
    pages: list[Page], backend, settings: Settings, cache: ResponseCache, concurrency: int = 4
) -> list[Generated]:
    """Each page's queries, in the order of `pages`; cached answers are not asked again, new ones are cached as
    they come.

    A backend with `complete_batch` (TransformersChat) is given the uncached pages `backend.batch_size` at a time;
    one with only `complete` (OpenAIChat) is asked one page per call, `concurrency` calls at a time."""
    if hasattr(backend, "complete_batch"):
        return _generate_in_batches(pages, backend, settings, cache)

    def one(page: Page) -> Generated:
        key = cache.key(page, settings)
        answer = cache.get(key)
        if answer is not None:
            return _generated(page, answer, settings, cached=True)
        try:
            answer = backend.complete(page, settings)
        except GenerationError as error:
            answer = error
        else:
            cache.put(key, answer)
        return _generated(page, answer, settings, cached=False)

    pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
    try:
        return list(tqdm(pool.map(one, pages), total=len(pages), desc="generating queries", unit="page"))
    finally:  # an error (a full disk under the cache) asks no further page
        pool.shutdown(cancel_futures=True)


def _generate_in_batches(pages: list[Page], backend, settings: Settings, cache: ResponseCache) -> list[Generated]:
    keys = [cache.key(page, settings) for page in pages]
    generated: list[Generated | None] = [None] * len(pages)
    uncached = []
    with tqdm(total=len(pages), desc="generating queries", unit="page") as progress:
        for index, page in enumerate(pages):
            answer = cache.get(keys[index])
            if answer is None:
                uncached.append(index)
            else:
                generated[index] = _generated(page, answer, settings, cached=True)
                progress.update()
        for start in range(0, len(uncached), backend.batch_size):
            batch = uncached[start : start + backend.batch_size]
            answers = backend.complete_batch([pages[index] for index in batch], settings)
            for index, answer in zip(batch, answers, strict=True):
                if not isinstance(answer, GenerationError):
                    cache.put(keys[index], answer)
                generated[index] = _generated(pages[index], answer, settings, cached=False)
            progress.update(len(batch))
    return generated


def problems(generated: list[Generated], on_bad_page: str) -> Counter:
    """Pages without queries, by problem; with on_bad_page `error` the first one stops the stage, named."""
    counts = Counter(item.problem for item in generated if item.problem)
    if counts and on_bad_page == "error":
        first = next(item for item in generated if item.problem)
        raise RuntimeError(
            f"page {first.page_id!r}: no queries ({first.problem}: {first.detail or 'nothing usable in the answer'}); "
            f"{sum(counts.values())} page(s) in all ({dict(counts)}); set generate.on_bad_page: skip to count and "
            "skip them"
        )
    return counts


def failure_causes(generated: list[Generated]) -> dict[str, int]:
    """Failed pages by cause ("HTTP 401", "timeout", "malformed answer", ...), the most frequent first."""
    return dict(Counter(item.cause or "error" for item in generated if item.problem == "failed").most_common())


SERVER_HINT = (
    f"check the API key ({API_KEY_VARIABLE}), the model name (generate.model) and the server's URL (generate.base_url)"
)


def every_page_failed(generated: list[Generated], hint: str = SERVER_HINT) -> str | None:
    """When no page got an answer (every one failed: none cached, answered, empty or malformed), why, in one
    sentence: the causes (an HTTP status, a timeout), the first page's reason, and `hint`, what to check; else
    None."""
    if not generated or any(item.problem != "failed" for item in generated):
        return None
    causes = ", ".join(f"{cause}: {count}" for cause, count in failure_causes(generated).items())
    return (
        f"every page asked failed ({len(generated)} of {len(generated)}; {causes}), e.g. page "
        f"{generated[0].page_id!r}: {generated[0].detail}; {hint}"
    )


# A generated query is data. Dropped as not_a_query: text that speaks to the model rather than asks (prompt
# injection: "ignore the previous instructions", "you are now", chat-template tokens), always; and a shell command or
# a line of code, when the text is not phrased as a question (a question that names a command is kept).
_SPEAKS_TO_THE_MODEL = re.compile(
    r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+)?(?:of\s+)?(?:the\s+|your\s+|my\s+)?"
    r"(?:previous|prior|above|earlier|preceding)\s+(?:instructions?|prompts?|messages?|rules|directions)\b"
    r"|\byou\s+are\s+now\b|<\|\w+\|>|\[/?INST\]|<</?SYS>>|^\s*(?:system|assistant)\s*:",
    re.IGNORECASE,
)
_COMMAND_OR_CODE = re.compile(
    r"^\s*(?:\$\s|#!|>>>\s)"  # a shell or Python prompt, a shebang
    r"|^\s*(?:sudo\s+)?(?:rm|curl|wget|chmod|chown|cat|echo|nc|dd|bash|sh)\s+(?:-|/|~|\$|\.{1,2}/|https?://)"
    r"|\|\s*(?:sudo\s+)?(?:ba|z|da)?sh\b|;\s*(?:rm|curl|wget|sudo|sh|bash)\b"  # piped into a shell, chained
    r"|^\s*(?:import\s+[\w.]+\s*(?:;|$)|from\s+[\w.]+\s+import\s|def\s+\w+\s*\(|class\s+\w+\s*[(:])"
    r"|\b(?:os\.system|subprocess\.\w+|eval|exec)\s*\(\s*['\"]",
    re.IGNORECASE,
)
_QUESTION = re.compile(
    r"\?\s*$|^\s*(?:how|what|why|when|where|which|who|whose|can|could|does|do|is|are|should|will|would)\b",
    re.IGNORECASE,
)


def not_a_query(text: str) -> bool:
    """Whether `text` is plainly not a question a user would type: an instruction to a model, or (unless phrased as
    a question) a shell command or code."""
    return bool(_SPEAKS_TO_THE_MODEL.search(text)) or (
        not _QUESTION.search(text) and bool(_COMMAND_OR_CODE.search(text))
    )


def filter_queries(generated: list[Generated], min_chars: int, max_chars: int) -> tuple[list[tuple[str, str]], dict]:
    """(page id, query) pairs that pass: not too short or long, a question rather than an instruction, a command or
    code (`not_a_query`), not a duplicate of an earlier query (case and spacing ignored). The counts say how many
    each rule dropped."""
    kept, seen = [], set()
    counts = {"generated": 0, "too_short": 0, "too_long": 0, "not_a_query": 0, "duplicate": 0}
    for item in generated:
        for query in item.queries:
            counts["generated"] += 1
            normal = " ".join(query.lower().split())
            if len(query) < min_chars:
                counts["too_short"] += 1
            elif len(query) > max_chars:
                counts["too_long"] += 1
            elif not_a_query(query):
                counts["not_a_query"] += 1
            elif normal in seen:
                counts["duplicate"] += 1
            else:
                seen.add(normal)
                kept.append((item.page_id, query))
    counts["kept"] = len(kept)
    return kept, counts
