"""Real upstreams' webhook packages for tests: GitHub's example payloads and the upstreams' own signers.

Nothing of theirs is vendored. On first use the npm packages are installed
into `<repo>/.beastflow/npm-upstreams/` (gitignored, reused by later runs;
delete the folder to refresh them):

    @octokit/webhooks-examples@7   GitHub's published example payloads
    @octokit/webhooks-methods@6    GitHub's signer (X-Hub-Signature-256)
    stripe                         Stripe's test header helper (Stripe-Signature)
    standardwebhooks@1             the Standard Webhooks reference library (webhook-signature)

and ONE long-lived Node process (tests/upstream_signer.mjs) answers every
request of the Python process, over JSON lines on stdin/stdout.

API (plain functions; any test module, simulator test or script may use them):

    github_examples(name) -> list[dict]          GitHub's example payloads of one event ("issues", "ping")
    sign_github(secret, body) -> str             "sha256=<hex>", the X-Hub-Signature-256 value
    stripe_header(secret, body, timestamp) -> str    the Stripe-Signature value "t=...,v1=..."
    standard_webhooks_headers(secret, id, timestamp, body) -> dict   webhook-id, -timestamp, -signature
    signer() -> UpstreamSigner                   the process itself (started on first use)

`body` is the exact text that will be posted (sent as its UTF-8 bytes).
When npm cannot reach its registry (or Node/npm are missing) every call
raises `UpstreamPackagesUnavailableError`; the pytest fixture in
tests/upstream_fixtures.py turns that into a skip that says so. Any other
install failure is an error, never a silent skip.

Safe across processes (an install lock) and threads (one request at a time).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".beastflow" / "npm-upstreams"
SIGNER_SOURCE = Path(__file__).resolve().parent / "upstream_signer.mjs"
PACKAGES = (
    "@octokit/webhooks-examples@7",
    "@octokit/webhooks-methods@6",
    "stripe",
    "standardwebhooks@1",
)
INSTALLED_MARKERS = (
    "@octokit/webhooks-examples/package.json",
    "@octokit/webhooks-methods/package.json",
    "stripe/package.json",
    "standardwebhooks/package.json",
)
INSTALL_TIMEOUT_S = 300
ANSWER_TIMEOUT_S = 30
# What npm prints when the registry cannot be reached (not a bug of ours: skip).
_OFFLINE = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET", "ENETUNREACH", "network", "proxy")


class UpstreamPackagesUnavailableError(RuntimeError):
    """npm cannot reach its registry, or Node/npm are not installed: the tests that need them skip."""


def ensure_installed(cache: Path = CACHE) -> Path:
    """The folder holding node_modules with the four packages, installing them once."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise UpstreamPackagesUnavailableError("node and npm are not installed on this machine")
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be installing right now
        if all((cache / "node_modules" / marker).is_file() for marker in INSTALLED_MARKERS):
            return cache
        package_json = cache / "package.json"
        if not package_json.exists():
            package_json.write_text(json.dumps({"name": "beastflow-test-upstreams", "private": True}) + "\n")
        try:
            done = subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", *PACKAGES],
                cwd=cache,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise UpstreamPackagesUnavailableError(
                f"npm install took over {INSTALL_TIMEOUT_S} s (registry unreachable?)"
            ) from exc
        if done.returncode != 0:
            output = done.stdout + done.stderr
            if any(word in output for word in _OFFLINE):
                raise UpstreamPackagesUnavailableError(f"npm cannot reach its registry: {output.strip()[-400:]}")
            raise RuntimeError(f"npm install {' '.join(PACKAGES)} failed:\n{output}")
    return cache


class UpstreamSigner:
    """One Node process running tests/upstream_signer.mjs; `call(op, **args)` per request."""

    def __init__(self, cache: Path = CACHE) -> None:
        folder = ensure_installed(cache)
        script = folder / "signer.mjs"
        # A copy beside node_modules: Node resolves an ES module's imports from where it lies.
        if not script.exists() or script.read_bytes() != SIGNER_SOURCE.read_bytes():
            temporary = folder / f".signer.{os.getpid()}.mjs"
            shutil.copyfile(SIGNER_SOURCE, temporary)
            temporary.replace(script)
        self._lock = threading.Lock()
        self._next = 0
        self._process = subprocess.Popen(
            ["node", str(script)],
            cwd=folder,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        if self.call("ping") != "pong":
            raise RuntimeError("the upstream signer did not answer its ping")

    def call(self, op: str, **args: Any) -> Any:
        with self._lock:
            if self._process.poll() is not None:
                raise RuntimeError(f"the upstream signer exited: {self._stderr()}")
            self._next += 1
            rid = self._next
            assert self._process.stdin is not None and self._process.stdout is not None
            self._process.stdin.write(json.dumps({"rid": rid, "op": op, "args": args}) + "\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the upstream signer closed its output: {self._stderr()}")
        answer = json.loads(line)
        if answer.get("rid") != rid:
            raise RuntimeError(f"the upstream signer answered request {answer.get('rid')}, expected {rid}")
        if "error" in answer:
            raise RuntimeError(f"upstream signer, {op}: {answer['error']}")
        return answer["result"]

    def _stderr(self) -> str:
        if self._process.poll() is None or self._process.stderr is None:
            return "(still running)"
        return self._process.stderr.read()[-2000:]

    def close(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(OSError):
                assert self._process.stdin is not None
                self._process.stdin.close()  # the script ends when its input does
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    # The upstreams' operations ------------------------------------------------

    def github_examples(self, name: str) -> list[dict[str, Any]]:
        examples = self.call("github_examples", name=name)
        assert isinstance(examples, list)
        return examples

    def sign_github(self, secret: str, body: str) -> str:
        return str(self.call("sign_github", secret=secret, payload=body))

    def stripe_header(self, secret: str, body: str, timestamp: int) -> str:
        return str(self.call("stripe_header", secret=secret, payload=body, timestamp=timestamp))

    def standard_webhooks_headers(self, secret: str, message_id: str, timestamp: int, body: str) -> dict[str, str]:
        signature = self.call(
            "standard_webhooks_signature", secret=secret, id=message_id, timestamp=timestamp, payload=body
        )
        return {"webhook-id": message_id, "webhook-timestamp": str(timestamp), "webhook-signature": str(signature)}


_signer: UpstreamSigner | None = None
_signer_lock = threading.Lock()


def signer() -> UpstreamSigner:
    """The process's signer, started (and the packages installed) on first use; stopped at exit."""
    global _signer
    with _signer_lock:
        if _signer is None:
            _signer = UpstreamSigner()
            atexit.register(_signer.close)
        return _signer


def github_examples(name: str) -> list[dict[str, Any]]:
    return signer().github_examples(name)


def sign_github(secret: str, body: str) -> str:
    return signer().sign_github(secret, body)


def stripe_header(secret: str, body: str, timestamp: int) -> str:
    return signer().stripe_header(secret, body, timestamp)


def standard_webhooks_headers(secret: str, message_id: str, timestamp: int, body: str) -> dict[str, str]:
    return signer().standard_webhooks_headers(secret, message_id, timestamp, body)
