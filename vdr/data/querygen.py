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
- Timeouts, connection errors, HTTP 429 and 5xx are retried with exponential backoff (a server's
  Retry-After is honoured); other HTTP errors fail the page at once. A page whose request keeps failing, or
  whose answer holds no usable query, is counted and reported with its id, never dropped silently:
  `on_bad_page: error` stops at the first, `skip` counts it.
- Answers are parsed leniently, as real servers answer (`parse_queries`): a JSON list (also inside a ```json
  fence or as {"queries": [...]}), else one query per line with numbering, bullets and quotes stripped.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests
from tqdm.auto import tqdm

from vdr.io.files import write_json

DEFAULT_PROMPT = (
    "You see one page of a document. Write {n} different search queries that a user would type into a search "
    "engine to find exactly this page: specific questions that this page answers and few other pages would. "
    "Use your own words; do not copy phrases from the page. One query per line, no numbering, nothing else."
)


API_KEY_VARIABLE = "OPENAI_API_KEY"


RETRIED_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class GenerationError(RuntimeError):
    """A request that failed for good (after its retries), naming the page and the server's reason."""


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
            return json.loads(path.read_text())["answer"]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # an unreadable entry is asked again and rewritten

    def put(self, key: str, answer: str) -> None:
        write_json(self.path(key), {"answer": answer})


def _image_url(image: bytes) -> str:
    kind = "jpeg" if image[:3] == b"\xff\xd8\xff" else "png"
    return f"data:image/{kind};base64,{base64.b64encode(image).decode()}"


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
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s

    def _headers(self) -> dict:
        key = os.environ.get(API_KEY_VARIABLE, "")
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

    def complete(self, page: Page, settings: Settings) -> str:
        """The answer's text; GenerationError when the server keeps failing or refuses."""
        body = self.request_body(page, settings)
        reason = ""
        for attempt in range(self.max_retries + 1):
            wait = min(self.backoff_s * 2**attempt, self.max_backoff_s)
            try:
                response = requests.post(self.url, json=body, headers=self._headers(), timeout=self.timeout_s)
            except (requests.Timeout, requests.ConnectionError) as error:
                reason = f"{type(error).__name__} from {self.url}"
            else:
                if response.status_code == 200:
                    return self._answer(response)
                reason = f"HTTP {response.status_code} from {self.url}: {response.text[:200]!r}"
                if response.status_code not in RETRIED_STATUS:
                    raise GenerationError(reason)
                wait = max(wait, _retry_after(response))
            if attempt < self.max_retries:
                time.sleep(min(wait, self.max_backoff_s))
        raise GenerationError(f"{reason} (after {self.max_retries + 1} attempts)")

    def _answer(self, response) -> str:
        try:
            message = response.json()["choices"][0]["message"]
            content = message["content"]
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise GenerationError(f"{self.url} answered without choices[0].message.content ({error!r})") from None
        if isinstance(content, list):  # some servers answer with content parts
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        return content or ""


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
        return Generated(page.id, problem="failed", detail=str(answer))
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

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(tqdm(pool.map(one, pages), total=len(pages), desc="generating queries", unit="page"))


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


def filter_queries(generated: list[Generated], min_chars: int, max_chars: int) -> tuple[list[tuple[str, str]], dict]:
    """(page id, query) pairs that pass: not too short or long, not a duplicate of an earlier query (case and
    spacing ignored). The counts say how many each rule dropped."""
    kept, seen = [], set()
    counts = {"generated": 0, "too_short": 0, "too_long": 0, "duplicate": 0}
    for item in generated:
        for query in item.queries:
            counts["generated"] += 1
            normal = " ".join(query.lower().split())
            if len(query) < min_chars:
                counts["too_short"] += 1
            elif len(query) > max_chars:
                counts["too_long"] += 1
            elif normal in seen:
                counts["duplicate"] += 1
            else:
                seen.add(normal)
                kept.append((item.page_id, query))
    counts["kept"] = len(kept)
    return kept, counts
