"""`accre-pipeline serve` run for a test: the real command in a child process, on a port the
kernel picks (`--listen 127.0.0.1:0`, read back from its log line), with a state the test
fills through the store, as a shipper would."""

from __future__ import annotations

import json
import queue
import re
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from accre_monitor.pipeline.state_store import open_state
from accre_monitor.record import iso_now, new_id

TOKEN = "serve-test-token-0123456789"


def record(node: str, check: str, status: str = "OK", ago: float = 0.0, **extra: Any) -> dict:
    """A result of `check` from `node`, dated `ago` seconds ago."""
    return {
        "id": new_id(),
        "node": node,
        "name": check,
        "status": status,
        "date": iso_now(time.time() - ago),
        "short": f"{check} {status.lower()} on {node}",
        **extra,
    }


class Answer:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class Served:
    """The server and its state: `take` records, `get`/`post`/`delete` the API."""

    def __init__(self, cli: Any, state: dict[str, str], serve: dict[str, Any] | None = None):
        self.cli = cli
        self.state = state
        lines = [f'[spool]\npath = "{cli.tmp / "spool.db"}"', "[state]"]
        lines += [f'{key} = "{value}"' for key, value in state.items()]
        if serve:
            lines.append("[serve]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in serve.items()]
        config = cli.write_config("\n".join(lines) + "\n")
        config.chmod(0o600)
        self.store = open_state(state)
        self.proc: Any = None
        self.base = ""
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []

    def start(self, *args: str, timeout: float = 30.0) -> Served:
        self.proc = self.cli.popen(
            "serve", "--listen", "127.0.0.1:0", *args, script="accre-pipeline"
        )
        threading.Thread(target=self._read_stderr, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self.base:
            try:
                line = self.lines.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            found = re.search(r"url='(http://[^']+)/'", line)
            if found:
                self.base = found.group(1)
            elif self.proc.poll() is not None and self.lines.empty():
                raise RuntimeError(f"serve exited {self.proc.returncode}: {self.stderr()}")
            elif time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start within {timeout} s: {self.stderr()}")
        return self

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line)
            self.lines.put(line)

    def stderr(self) -> str:
        return "".join(self.log)

    def stop(self) -> int:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.store.close()
        return self.proc.returncode if self.proc is not None else 0

    def take(self, *records: dict) -> None:
        taken = self.store.take(list(records))
        assert all(t.problem is None for t in taken), taken

    def url(self, path: str) -> str:
        return self.base + path

    def request(self, method: str, path: str, body: Any = None, headers: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url(path), data=data, method=method)
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        if data is not None:
            request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Answer(response.status, response.headers, response.read())
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, exc.headers, exc.read())

    def get(self, path: str, **headers: str) -> Answer:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, body: Any, token: str | None = None) -> Answer:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return self.request("POST", path, body, headers)

    def delete(self, path: str, token: str | None = None) -> Answer:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return self.request("DELETE", path, headers=headers)
