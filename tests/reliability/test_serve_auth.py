"""Defect 1: `serve` drove the app for anyone. A real websocket client (aiohttp) against the
real server: without the token, with a foreign Origin or Host (DNS rebinding) it is refused
and no app process starts; with the printed URL's token it gets the app."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.reliability.tools import ROOT, pids_with, wait_gone
from workbench.cli.serve_guard import Guard


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    def __init__(self, home: Path, host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.marker = f"serve-test-{uuid.uuid4().hex}"
        env = {**os.environ, "AIPERF_TEST_MARKER": self.marker, "AIPERF_CONFIG": "/nonexistent",
               "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                             if p)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "--home", str(home), "serve", "--port",
             str(self.port), "--host", host], env=env, cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self.url = self._wait_url()
        except BaseException:
            self.stop()  # no server outlives a failed start
            raise
        self.token = self.url.split("token=", 1)[1]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            self.lines.append(raw.decode(errors="replace"))

    def _wait_url(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = re.search(r"http://\S+/\?token=[\w-]+", line)
                if found:
                    return found.group(0)
            assert self.proc.poll() is None, "".join(self.lines)
            time.sleep(0.1)
        raise AssertionError("no URL with a token:\n" + "".join(self.lines))

    def app_processes(self) -> list[int]:
        """The per-tab app processes (the server's children running the TUI)."""
        return [pid for pid in pids_with(self.marker) if pid != self.proc.pid]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        wait_gone(self.marker, 10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path / "home")
    try:
        yield server
    finally:
        server.stop()


async def _ws_status(url: str, headers: dict[str, str] | None = None) -> int | str:
    """The handshake's HTTP status when refused, or the first frame's type when accepted."""
    async with aiohttp.ClientSession() as http:
        try:
            async with http.ws_connect(url, headers=headers or {}) as ws:
                message = await ws.receive(timeout=60)
                return f"open:{message.type.name}"
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


async def _http_status(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers or {}, allow_redirects=False) as response:
            return response.status, {k: v.value for k, v in response.cookies.items()}


def test_websocket_without_token_or_from_another_origin_is_refused(served: Served) -> None:
    base = f"ws://127.0.0.1:{served.port}/ws"
    tok = f"?token={served.token}"
    attacks = {
        "no token": (base, {}),
        "wrong token": (base + "?token=" + "x" * 43, {}),
        "foreign origin": (base + tok, {"Origin": "http://evil.example"}),
        "rebound host": (base + tok, {"Host": f"evil.example:{served.port}",
                                      "Origin": f"http://evil.example:{served.port}"}),
        "null origin": (base + tok, {"Origin": "null"}),
    }
    for what, (url, headers) in attacks.items():
        status = asyncio.run(_ws_status(url, headers))
        assert status in (401, 403), (what, status)
    time.sleep(1.0)
    assert served.app_processes() == [], "a refused websocket started the app"
    # the holder of the printed URL gets the app, from the page's own origin
    status = asyncio.run(_ws_status(base + tok, {"Origin": f"http://127.0.0.1:{served.port}"}))
    assert status == "open:BINARY", status


def test_every_http_request_needs_the_token(served: Served) -> None:
    root = f"http://127.0.0.1:{served.port}"
    assert asyncio.run(_http_status(root + "/"))[0] == 401
    assert asyncio.run(_http_status(root + "/static/js/textual.js"))[0] == 401
    assert asyncio.run(_http_status(served.url, {"Host": "evil.example"}))[0] == 403
    assert asyncio.run(_http_status(served.url, {"Origin": "http://evil.example"}))[0] == 403
    status, cookies = asyncio.run(_http_status(served.url))
    assert status == 200 and cookies.get(f"aiperf_token_{served.port}") == served.token
    # the page's assets and websocket carry the cookie the page load set
    headers = {"Cookie": f"aiperf_token_{served.port}={served.token}"}
    assert asyncio.run(_http_status(root + "/static/js/textual.js", headers))[0] == 200
    assert served.token not in "".join(served.lines).replace(served.url, ""), "token logged"


def test_a_token_is_new_at_every_launch(tmp_path: Path) -> None:
    tokens = []
    for index in range(2):
        server = Served(tmp_path / f"home{index}")
        try:
            tokens.append(server.token)
            assert len(server.token) >= 32
        finally:
            server.stop()
    assert tokens[0] != tokens[1]


def test_non_loopback_host_requires_the_token_and_says_so(tmp_path: Path) -> None:
    server = Served(tmp_path / "home", host="0.0.0.0")
    try:
        said = "".join(server.lines)
        assert "reachable from other machines" in said and "token" in said, said
        root = f"http://127.0.0.1:{server.port}/"
        assert asyncio.run(_http_status(root))[0] == 401
        assert asyncio.run(_http_status(root + f"?token={server.token}"))[0] == 200
    finally:
        server.stop()


@pytest.mark.parametrize("host,ok", [
    ("127.0.0.1:8000", True), ("localhost:8000", True), ("[::1]:8000", True),
    ("10.1.2.3:8000", True),  # a literal address cannot be rebound by DNS
    ("evil.example:8000", False), ("127.0.0.1:9999", False), ("", False),
    ("localhost.evil.example:8000", False),
])
def test_host_check(host: str, ok: bool) -> None:
    assert Guard("t" * 43, "127.0.0.1", 8000).host_allowed(host) is ok


@pytest.mark.parametrize("origin,ok", [
    (None, True), ("http://127.0.0.1:8000", True), ("http://evil.example", False),
    ("http://127.0.0.1:8001", False), ("null", False), ("file://", False),
    ("http://localhost:8000", False),  # the Host said 127.0.0.1: another origin
])
def test_origin_check(origin: str | None, ok: bool) -> None:
    assert Guard("t" * 43, "127.0.0.1", 8000).origin_allowed(origin, "127.0.0.1:8000") is ok
