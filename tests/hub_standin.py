"""A stand-in for the Hugging Face hub's file endpoints on 127.0.0.1 (tests only).

Serves folders as model repositories with what ``huggingface_hub.hf_hub_download`` uses:
``HEAD|GET /{org}/{name}/resolve/{revision}/{path}``. Small files answer 200 with ``ETag`` (the
git blob sha1) and ``X-Repo-Commit``; weights answer as the hub answers LFS files, a 302 to another
origin (``localhost`` instead of ``127.0.0.1``) with ``X-Linked-Etag`` (their sha256) and
``X-Linked-Size``, served at ``/cdn-lfs/<sha256>``. Missing files and repositories answer 404 with
the hub's ``X-Error-Code``. Point ``HF_ENDPOINT`` at :attr:`HubStandIn.url` before
huggingface_hub is imported (in a subprocess), with ``HF_HUB_DISABLE_TELEMETRY=1``.
"""

import hashlib
import http.server
import json
import os
import threading
import urllib.parse

LFS_SUFFIXES = (".h5", ".safetensors", ".bin", ".pth", ".tar", ".keras")


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repository:
    def __init__(self, folder):
        self.files = {}
        for root, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(root, name)
                with open(path, "rb") as handle:
                    self.files[os.path.relpath(path, folder).replace(os.sep, "/")] = handle.read()
        listing = "".join(f"{p}:{git_blob_sha1(d)}\n" for p, d in sorted(self.files.items()))
        self.commit = hashlib.sha1(listing.encode()).hexdigest()
        self.sha256 = {path: hashlib.sha256(data).hexdigest() for path, data in self.files.items()}


class HubStandIn:
    """``with HubStandIn() as hub: hub.add("org/name", folder)``; ``hub.requests`` logs them."""

    def __init__(self):
        self.repositories = {}
        self.requests = []  # (method, path)

    def add(self, repo_id, folder):
        self.repositories[repo_id] = Repository(folder)
        return self.repositories[repo_id]

    def __enter__(self):
        handler = type("Handler", (_Handler,), {"hub": self})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        port = self.server.server_address[1]
        self.url, self.cdn = f"http://127.0.0.1:{port}", f"http://localhost:{port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class _Handler(http.server.BaseHTTPRequestHandler):
    hub = None
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):  # noqa: N802 (the http.server API)
        self._route()

    def do_GET(self):  # noqa: N802
        self._route()

    def _send(self, status, headers=(), body=b""):
        self.hub.requests.append((self.command, self.path))
        self.send_response(status)
        headers = dict(headers)
        headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, code, extra=()):
        body = json.dumps({"error": code}).encode()
        self._send(404, {"X-Error-Code": code, "Content-Type": "application/json", **dict(extra)},
                   body)  # fmt: skip

    def _route(self):
        parts = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).strip("/").split("/")
        if parts[0] == "cdn-lfs" and len(parts) == 2:
            return self._cdn(parts[1])
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve(f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))
        self._send(404, body=b"not found")

    def _resolve(self, repo_id, revision, filename):
        repository = self.hub.repositories.get(repo_id)
        if repository is None:
            return self._error("RepoNotFound")
        if revision not in ("main", repository.commit):
            return self._error("RevisionNotFound")
        commit = {"X-Repo-Commit": repository.commit}
        if filename not in repository.files:
            return self._error("EntryNotFound", commit)
        data = repository.files[filename]
        if filename.endswith(LFS_SUFFIXES):
            sha256 = repository.sha256[filename]
            return self._send(
                302,
                {
                    **commit,
                    "ETag": f'"{git_blob_sha1(data)}"',
                    "X-Linked-Etag": f'"{sha256}"',
                    "X-Linked-Size": str(len(data)),
                    "Location": f"{self.hub.cdn}/cdn-lfs/{sha256}",
                },
            )
        self._send(200, {**commit, "ETag": f'"{git_blob_sha1(data)}"'}, data)

    def _cdn(self, sha256):
        for repository in self.hub.repositories.values():
            for path, digest in repository.sha256.items():
                if digest == sha256:
                    data = repository.files[path]
                    return self._send(200, {"ETag": f'"{sha256}"'}, data)
        self._send(404, body=b"no such object")
