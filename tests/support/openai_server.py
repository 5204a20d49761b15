"""A small OpenAI-compatible chat-completions server on 127.0.0.1, for tests: POST /v1/chat/completions.

    with ChatServer(responder) as server:      # server.url: http://127.0.0.1:PORT/v1
        ...

`responder(page, attempt)` (or `responder(page, attempt, body)` with `ChatServer(responder, with_body=True)`, to
answer from what the request carries) decides each answer: `page` is the sha256 of the request's image bytes,
`attempt` how many times that page was asked before (0 first). It returns `Reply(status, text, delay_s)`: a 200
with `text` as the message content, or another status (with `text` as the error body), after `delay_s` seconds
(longer than the client's timeout: a timeout). `server.requests` records (page, Authorization header, the request
body); a test can tell exactly what was sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Reply:
    status: int = 200
    text: str = "what does this page explain?\nwhich example does this page give?"
    delay_s: float = 0.0


def image_digest(body: dict) -> str:
    """The sha256 of the first data-URL image in the request's messages."""
    for message in body.get("messages", []):
        for part in message.get("content", []) if isinstance(message.get("content"), list) else []:
            if part.get("type") == "image_url":
                data = part["image_url"]["url"].split(",", 1)[1]
                return hashlib.sha256(base64.b64decode(data)).hexdigest()
    return ""


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, responder=lambda page, attempt: Reply(), with_body: bool = False):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.responder = responder
        self.with_body = with_body
        self.requests: list[tuple[str, str, dict]] = []
        self.attempts: Counter = Counter()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        server: ChatServer = self.server
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        page = image_digest(body)
        with server.lock:
            server.requests.append((page, self.headers.get("Authorization", ""), body))
            attempt = server.attempts[page]
            server.attempts[page] += 1
        reply = server.responder(page, attempt, body) if server.with_body else server.responder(page, attempt)
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.status != 200:
            return self._send(reply.status, {"error": {"message": reply.text}})
        choice = {"index": 0, "message": {"role": "assistant", "content": reply.text}, "finish_reason": "stop"}
        self._send(
            200, {"id": "chatcmpl-test", "object": "chat.completion", "model": body.get("model"), "choices": [choice]}
        )

    def _send(self, status: int, payload: dict):
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
            pass
