"""A loopback stand-in for the Hugging Face Hub's HTTP API, just enough for dataset repos.

It answers the requests huggingface_hub 2.4 actually makes for ``whoami``, ``create_repo``, ``repo_info``,
``update_repo_settings`` and ``upload_folder``, found by running the client against it with request logging:
preupload, then the LFS batch API, a PUT of each LFS object to the (unauthenticated, S3-like) URL it hands out and the
verify call, then the NDJSON commit. Parquet files are answered "lfs" as on the real Hub (its default .gitattributes),
the other files "regular". The real client prefers the Xet protocol when ``hf_xet`` is installed; tests turn it off
(``HF_HUB_DISABLE_XET``) so the LFS path runs. Point the client at it with ``HF_ENDPOINT`` / ``endpoint=``.
Every request is recorded (method, path, headers, body) so tests can check what reached the "Hub".

Hostile on purpose, so that nothing can leak the token unnoticed: every error body (401, 403, 500 ...) quotes the
Authorization header it received, and every answer carries an ``X-HF-Warning`` header quoting it too, which the
client logs as a warning. ``faults`` makes a route fail with a status; ``public_on_commit`` makes the repo public
when a commit lands (a Hub or an admin that changes visibility behind the pusher's back).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml


@dataclass
class FakeRepo:
    repo_id: str
    repo_type: str
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)

    @property
    def sha(self) -> str:
        return self.commits[-1] if self.commits else "0" * 40


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FakeHub:
    """Start with ``with FakeHub(token="hf_x") as hub: ... hub.url``."""

    def __init__(self, token: str, user: str = "tester") -> None:
        self.token, self.user = token, user
        self.repos: dict[tuple[str, str], FakeRepo] = {}
        self.requests: list[Request] = []
        self.fail_settings = False  # simulate a Hub that ignores update_repo_settings
        self.public_on_commit = False  # the repo turns public when a commit lands
        self.faults: dict[str, int] = {}  # route name (create, settings, preupload, lfs-batch, commit ...) -> status
        self.lfs: dict[str, bytes] = {}  # LFS objects stored by sha256 oid
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                req = Request(self.command, self.path, dict(self.headers.items()), self._body())
                with hub._lock:
                    hub.requests.append(req)
                    number = len(hub.requests)
                    status, payload = hub.route(req)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                # a fresh topic each time: the client logs only the first warning of a topic, once per process
                self.send_header("X-HF-Warning", f"fakehub-{uuid.uuid4().hex}; request {number} came with "
                                                 f"{_auth(req)!r}")
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- state helpers for tests
    def add_repo(self, repo_id: str, *, private: bool, repo_type: str = "dataset") -> FakeRepo:
        repo = FakeRepo(repo_id, repo_type, private)
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def repo(self, repo_id: str, repo_type: str = "dataset") -> FakeRepo:
        return self.repos[(repo_type, repo_id)]

    # -- routing
    def route(self, req: Request) -> tuple[int, object]:
        path = req.path.split("?", 1)[0]
        if req.method == "PUT" and path.startswith("/lfs-objects/"):  # the storage URL: no token, like S3
            return self._lfs_put(path.rsplit("/", 1)[1], req.body)
        if _auth(req) != f"Bearer {self.token}":
            return 401, {"error": f"Invalid credentials in Authorization header {_auth(req)!r}"}
        status, payload = self._route(req, path)
        if status >= 400 and isinstance(payload, dict):
            payload = {**payload, "error": f"{payload.get('error')} (request authorized with {_auth(req)!r})"}
        return status, payload

    def _fault(self, name: str) -> tuple[int, object] | None:
        status = self.faults.get(name)
        if status is None:
            return None
        return status, {"error": {403: "You don't have the rights to do this", 500: "Internal Error"}.get(
            status, f"fake hub: fault {status}") + f" ({name})"}

    def _route(self, req: Request, path: str) -> tuple[int, object]:
        lfs = re.fullmatch(r"/datasets/([^/]+/[^/]+)\.git/info/lfs/objects/batch", path)
        if req.method == "POST" and lfs:
            return self._fault("lfs-batch") or self._lfs_batch(json.loads(req.body))
        if req.method == "POST" and path == "/lfs-verify":
            return self._fault("lfs-verify") or self._lfs_verify(json.loads(req.body))
        if req.method == "GET" and path == "/api/whoami-v2":
            return 200, {"type": "user", "name": self.user, "fullname": self.user, "orgs": [],
                         "auth": {"type": "access_token", "accessToken": {"role": "write", "displayName": "t"}}}
        if req.method == "POST" and path == "/api/validate-yaml":
            return self._validate_yaml(json.loads(req.body)["content"])
        if req.method == "POST" and path == "/api/repos/create":
            return self._fault("create") or self._create(json.loads(req.body))
        m = re.fullmatch(r"/api/(datasets|models|spaces)/([^/]+/[^/]+)(/.*)?", path)
        if not m:
            return 404, {"error": f"fake hub: no route for {req.method} {path}"}
        repo_type = {"datasets": "dataset", "models": "model", "spaces": "space"}[m.group(1)]
        repo = self.repos.get((repo_type, m.group(2)))
        if repo is None:
            return 404, {"error": "Repository not found"}
        rest = m.group(3) or ""
        if req.method == "GET" and (rest == "" or rest.startswith("/revision/")):
            return 200, self._info(repo)
        if req.method == "PUT" and rest == "/settings":
            if fault := self._fault("settings"):
                return fault
            settings = json.loads(req.body)
            if not self.fail_settings:
                if "private" in settings:
                    repo.private = bool(settings["private"])
                if "visibility" in settings:
                    repo.private = settings["visibility"] != "public"
            return 200, {}
        if req.method == "POST" and rest.startswith("/preupload/"):
            files = json.loads(req.body)["files"]
            return self._fault("preupload") or (200, {"files": [
                {"path": f["path"], "uploadMode": "lfs" if f["path"].endswith(".parquet") else "regular",
                 "shouldIgnore": False} for f in files], "commitOid": repo.sha})
        if req.method == "POST" and rest.startswith("/commit/"):
            return self._fault("commit") or self._commit(repo, req.body)
        return 404, {"error": f"fake hub: no route for {req.method} {path}"}

    def _validate_yaml(self, content: str) -> tuple[int, object]:
        # The real Hub checks the README front matter against its schema; here: it must be a YAML mapping.
        parts = content.split("---\n")
        try:
            meta = yaml.safe_load(parts[1]) if content.startswith("---\n") and len(parts) > 2 else {}
        except yaml.YAMLError as exc:
            return 400, {"errors": [{"message": f"invalid YAML: {exc}"}], "warnings": []}
        if not isinstance(meta, dict):
            return 400, {"errors": [{"message": "front matter is not a mapping"}], "warnings": []}
        return 200, {"errors": [], "warnings": []}

    def _create(self, payload: dict) -> tuple[int, object]:
        name, org = payload["name"], payload.get("organization") or self.user
        repo_id, repo_type = f"{org}/{name}", payload.get("type") or "model"
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.url}/{prefix}{repo_id}"
        if (repo_type, repo_id) in self.repos:
            return 409, {"error": "You already created this dataset repo", "url": url}
        private = payload.get("visibility", "public") != "public" if "visibility" in payload else bool(
            payload.get("private", False)
        )
        self.add_repo(repo_id, private=private, repo_type=repo_type)
        return 200, {"url": url, "name": repo_id, "id": repo_id}

    def _info(self, repo: FakeRepo) -> dict:
        return {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": repo.sha,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "lastModified": "2026-01-01T00:00:00.000Z",
            "createdAt": "2026-01-01T00:00:00.000Z",
            "siblings": [{"rfilename": name} for name in sorted(repo.files)],
        }

    def _commit(self, repo: FakeRepo, body: bytes) -> tuple[int, object]:
        for line in body.decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            value = item["value"]
            if item["key"] == "file":
                content = value["content"]
                data = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                repo.files[value["path"]] = data
            elif item["key"] == "lfsFile":
                if value.get("algo") != "sha256" or value["oid"] not in self.lfs:
                    return 400, {"error": f"fake hub: LFS object {value['oid']} of {value['path']} was never uploaded"}
                repo.files[value["path"]] = self.lfs[value["oid"]]
            elif item["key"] == "deletedFile":
                repo.files.pop(value["path"], None)
            elif item["key"] != "header":
                return 400, {"error": f"fake hub: unsupported commit operation {item['key']}"}
        oid = hashlib.sha1(body).hexdigest()
        repo.commits.append(oid)
        if self.public_on_commit:
            repo.private = False
        return 200, {"commitUrl": f"{self.url}/datasets/{repo.repo_id}/commit/{oid}", "commitOid": oid,
                     "success": True}

    # -- LFS: batch API, the storage URL it hands out, verify
    def _lfs_batch(self, payload: dict) -> tuple[int, object]:
        if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", ["basic"]):
            return 400, {"error": f"fake hub: unsupported LFS batch request {payload}"}
        objects = []
        for obj in payload["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.lfs:
                entry["actions"] = {"upload": {"href": f"{self.url}/lfs-objects/{obj['oid']}"},
                                    "verify": {"href": f"{self.url}/lfs-verify"}}
            objects.append(entry)
        return 200, {"transfer": "basic", "objects": objects}

    def _lfs_put(self, oid: str, data: bytes) -> tuple[int, object]:
        if hashlib.sha256(data).hexdigest() != oid:
            return 400, {"error": f"fake hub: the bytes PUT for LFS object {oid} do not hash to it"}
        self.lfs[oid] = data
        return 200, {}

    def _lfs_verify(self, payload: dict) -> tuple[int, object]:
        data = self.lfs.get(payload["oid"])
        if data is None or len(data) != payload["size"]:
            return 404, {"error": f"fake hub: LFS object {payload['oid']} is missing or has another size"}
        return 200, {}


def _auth(req: Request) -> str:
    return req.headers.get("Authorization", req.headers.get("authorization", ""))
