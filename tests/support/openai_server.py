"""A small OpenAI-compatible chat-completions server on 127.0.0.1, for tests: POST /v1/chat/completions.

    with ChatServer(responder) as server:      # server.url: http://127.0.0.1:PORT/v1
        ...

`responder(page, attempt)` (or `responder(page, attempt, body)` with `ChatServer(responder, with_body=True)`, to
answer from what the request carries) decides each answer: `page` is the sha256 of the request's image bytes,
`attempt` how many times that page was asked before (0 first). It returns `Reply(status, text, delay_s)`: a 200
with `text` as the message content, or another status (with `text` as the error body), after `delay_s` seconds
(longer than the client's timeout: a timeout). As hostile servers answer: `content` is message.content as any JSON
value (null, a number, a list of parts), `body` the bytes of the whole body as they are (Latin-1, not JSON), and
`drip_s` sends the answer one byte every drip_s seconds (`drip_headers`: from its status line on, else the body
only), so that no single read ever waits long enough to time out. `server.requests` records (page, Authorization
header, the request body); a test can tell exactly what was sent.

GET /v1/models lists `models` (none unless given). With `api_key`, a request that does not carry it is answered 401
with an error that echoes the key it did carry, as some servers do; `server.gets` records (path, Authorization
header) of each GET.
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

TEXT = object()  # Reply.content's default: `text` is the content


@dataclass(frozen=True)
class Reply:
    status: int = 200
    text: str = "what does this page explain?\nwhich example does this page give?"
    delay_s: float = 0.0
    content: object = TEXT
    body: bytes | None = None
    drip_s: float = 0.0
    drip_headers: bool = True


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

    def __init__(
        self,
        responder=lambda page, attempt: Reply(),
        with_body: bool = False,
        api_key: str | None = None,
        models: tuple[str, ...] = (),
    ):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.responder = responder
        self.with_body = with_body
        self.api_key = api_key
        self.models = list(models)
        self.requests: list[tuple[str, str, dict]] = []
        self.gets: list[tuple[str, str]] = []
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

    def _refused(self) -> bool:
        """Without the server's key: answered 401, echoing the key the request carried."""
        server: ChatServer = self.server
        authorization = self.headers.get("Authorization", "")
        if server.api_key is None or authorization == f"Bearer {server.api_key}":
            return False
        given = authorization.removeprefix("Bearer ")
        self._send(401, {"error": {"message": f"Incorrect API key provided: {given}", "code": "invalid_api_key"}})
        return True

    def do_GET(self):
        server: ChatServer = self.server
        with server.lock:
            server.gets.append((self.path, self.headers.get("Authorization", "")))
        if self._refused():
            return
        if self.path.rstrip("/") != "/v1/models":
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        self._send(200, {"object": "list", "data": [{"id": name, "object": "model"} for name in server.models]})

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
        if self._refused():
            return
        reply = server.responder(page, attempt, body) if server.with_body else server.responder(page, attempt)
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.status != 200:
            return self._send(reply.status, {"error": {"message": reply.text}}, reply)
        content = reply.text if reply.content is TEXT else reply.content
        choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        payload = {"id": "chatcmpl-test", "object": "chat.completion", "model": body.get("model"), "choices": [choice]}
        self._send(200, payload, reply)

    def _send(self, status: int, payload: dict, reply: Reply = Reply()):
        data = reply.body if reply.body is not None else json.dumps(payload).encode()
        try:
            if not reply.drip_s:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            head = (
                f"HTTP/1.0 {status} {self.responses[status][0]}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n"
            ).encode()
            if not reply.drip_headers:
                self.wfile.write(head)
                head = b""
            for byte in head + data:
                self.wfile.write(bytes([byte]))
                time.sleep(reply.drip_s)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
            pass
