"""A small Hub-compatible HTTP server on 127.0.0.1, for tests: the endpoints huggingface_hub calls to
create a model repo and upload a folder to it (with HF_HUB_DISABLE_XET=1, the plain LFS protocol).

    POST /api/repos/create                             create a repo (409 when it exists)
    POST /api/validate-yaml                            check a README's YAML front matter
    GET  /api/models/{repo}[/revision/{rev}]           repo info (id, sha, files)
    POST /api/models/{repo}/preupload/{rev}            per file: upload mode (regular or lfs) and the oid already there
    POST /{repo}.git/info/lfs/objects/batch            LFS batch: where to PUT each object not stored yet
    PUT  /lfs-objects/{sha256}                         the LFS object's bytes
    POST /api/models/{repo}/commit/{rev}               the commit, as NDJSON (header, file, lfsFile, deletedFile)

Every request but the LFS PUT (a pre-signed storage URL on the real Hub) must carry
`Authorization: Bearer <token>`. Files live in memory; `server.requests`
records (method, path) of every request and `server.unknown` every request no route took, so a test
can tell exactly what was sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".h5", ".msgpack", ".ckpt")
LFS_MIN_SIZE = 10 * 1024 * 1024
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, token: str):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.token = token
        self.endpoint = f"http://127.0.0.1:{self.server_address[1]}"
        self.lock = threading.Lock()
        self.repos: dict[str, dict] = {}  # repo id -> {"private", "files": {path: (mode, bytes)}, "commits": [...]}
        self.lfs_objects: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.unknown: list[tuple[str, str]] = []

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()

    def files(self, repo_id: str) -> dict[str, bytes]:
        return {path: data for path, (_, data) in self.repos[repo_id]["files"].items()}


class _Handler(BaseHTTPRequestHandler):
    server: HubServer

    def log_message(self, format, *args):  # quiet
        pass

    # --- plumbing ---------------------------------------------------------------------------
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _reply(self, status: int, payload=None, headers: dict | None = None) -> None:
        data = json.dumps(payload if payload is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _repo(self, repo_id: str):
        repo = self.server.repos.get(repo_id)
        if repo is None:
            self._reply(404, {"error": f"Repository not found: {repo_id}"}, {"X-Error-Code": "RepoNotFound"})
        return repo

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        body = self._body()
        with self.server.lock:
            self.server.requests.append((method, path))
        presigned = path.startswith("/lfs-objects/")  # like the Hub's pre-signed storage URLs: no token needed
        if not presigned and self.headers.get("Authorization") != f"Bearer {self.server.token}":
            self._reply(401, {"error": "Invalid credentials in Authorization header"})
            return
        routes = [
            ("POST", r"/api/repos/create", self._create_repo),
            ("POST", r"/api/validate-yaml", self._validate_yaml),
            ("GET", r"/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?", self._repo_info),
            ("POST", r"/api/models/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>[^/]+)", self._preupload),
            ("POST", r"/(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch", self._lfs_batch),
            ("PUT", r"/lfs-objects/(?P<oid>[0-9a-f]{64})", self._lfs_put),
            ("POST", r"/api/models/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>[^/]+)", self._commit),
        ]
        for route_method, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if route_method == method and match:
                with self.server.lock:
                    handler(body, **{k: v for k, v in match.groupdict().items() if v is not None})
                return
        with self.server.lock:
            self.server.unknown.append((method, path))
        self._reply(404, {"error": f"no route for {method} {path}"})

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    # --- endpoints --------------------------------------------------------------------------
    def _create_repo(self, body: bytes) -> None:
        request = json.loads(body)
        repo_id = f"{request['organization']}/{request['name']}" if request.get("organization") else request["name"]
        url = f"{self.server.endpoint}/{repo_id}"
        if repo_id in self.server.repos:
            self._reply(409, {"error": "You already created this model repo", "url": url})
            return
        self.server.repos[repo_id] = {
            "private": request.get("visibility") == "private" or bool(request.get("private")),
            "files": {},
            "commits": [],
        }
        self._reply(200, {"url": url, "name": repo_id})

    def _validate_yaml(self, body: bytes) -> None:
        content = json.loads(body)["content"]
        errors = []
        if content.startswith("---\n") and "\n---" in content[4:]:
            try:
                metadata = yaml.safe_load(content[4 : content.index("\n---", 4)]) or {}
            except yaml.YAMLError as error:
                metadata, errors = {}, [{"message": f"invalid YAML: {error}"}]
            if not isinstance(metadata, dict):
                errors.append({"message": "the metadata must be a mapping"})
            elif "base_model" in metadata and not HUB_ID.match(str(metadata["base_model"])):
                errors.append(
                    {"message": f'"base_model" must be a model id (owner/name), found {metadata["base_model"]!r}'}
                )
        self._reply(400 if errors else 200, {"errors": errors, "warnings": []})

    def _repo_info(self, body: bytes, repo: str, rev: str = "main") -> None:
        info = self._repo(repo)
        if info is not None:
            sha = info["commits"][-1]["oid"] if info["commits"] else "0" * 40
            self._reply(
                200,
                {
                    "id": repo,
                    "sha": sha,
                    "private": info["private"],
                    "siblings": [{"rfilename": p} for p in sorted(info["files"])],
                },
            )

    def _preupload(self, body: bytes, repo: str, rev: str) -> None:
        info = self._repo(repo)
        if info is None:
            return
        answers = []
        for item in json.loads(body)["files"]:
            mode = "lfs" if item["path"].endswith(LFS_SUFFIXES) or item["size"] >= LFS_MIN_SIZE else "regular"
            existing = info["files"].get(item["path"])
            oid = None
            if existing is not None:
                stored_mode, data = existing
                oid = hashlib.sha256(data).hexdigest() if stored_mode == "lfs" else git_blob_sha1(data)
            answers.append({"path": item["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        self._reply(200, {"files": answers, "commitOid": info["commits"][-1]["oid"] if info["commits"] else None})

    def _lfs_batch(self, body: bytes, repo: str) -> None:
        if self._repo(repo) is None:
            return
        objects = []
        for item in json.loads(body)["objects"]:
            entry = {"oid": item["oid"], "size": item["size"]}
            if item["oid"] not in self.server.lfs_objects:
                entry["authenticated"] = True
                entry["actions"] = {"upload": {"href": f"{self.server.endpoint}/lfs-objects/{item['oid']}"}}
            objects.append(entry)
        self._reply(200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_put(self, body: bytes, oid: str) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            self._reply(400, {"error": f"content does not match sha256 {oid}"})
            return
        self.server.lfs_objects[oid] = body
        self._reply(200, {})

    def _commit(self, body: bytes, repo: str, rev: str) -> None:
        info = self._repo(repo)
        if info is None:
            return
        summary, changes = "", {}
        for line in body.decode().splitlines():
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                summary = value["summary"]
            elif key == "file":
                changes[value["path"]] = ("regular", base64.b64decode(value["content"]))
            elif key == "lfsFile":
                if value["oid"] not in self.server.lfs_objects:
                    self._reply(400, {"error": f"LFS object {value['oid']} for {value['path']} was never uploaded"})
                    return
                changes[value["path"]] = ("lfs", self.server.lfs_objects[value["oid"]])
            elif key == "deletedFile":
                changes[value["path"]] = None
            else:
                self._reply(400, {"error": f"unsupported commit item {key}"})
                return
        for path, change in changes.items():
            if change is None:
                info["files"].pop(path, None)
            else:
                info["files"][path] = change
        oid = hashlib.sha1(f"{len(info['commits'])}:{summary}:{sorted(changes)}".encode()).hexdigest()
        info["commits"].append({"oid": oid, "summary": summary, "paths": sorted(changes)})
        self._reply(
            200, {"commitUrl": f"{self.server.endpoint}/{repo}/commit/{oid}", "commitOid": oid, "pullRequestUrl": None}
        )
