"""`aiperf-workbench serve` in a real headless Chromium (Debian's `chromium` package).

The server and the browser run on loopback only, each as a child of this test that it stops
by pid. textual-serve draws the terminal with xterm.js on a WebGL/canvas surface, so the text
is not in the DOM: the test reads what the app sent to the page from the websocket frames the
browser received (Chrome DevTools Protocol, Network.webSocketFrameReceived), checks the page
state through Runtime.evaluate, and takes a screenshot.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.functional.terminal_tools import require_binary, workbench_command

ROOT = Path(__file__).resolve().parents[2]
SETUP_TEXTS = ("aiperf workbench", "Workload", "Dense decoder (Llama-3 style)", "Layers",
               "L0 Eager baseline", "Profiler", "Run (ctrl+r)")
ANSI = re.compile(rb"\x1b\[[0-9;:?<=>]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]|\x1b\][^\x07]*\x07")
# Everything that is not on this machine is blocked (the page links a web font).
BLOCKED = ["*://fonts.googleapis.com/*", "*://fonts.gstatic.com/*", "https://*"]


@pytest.fixture(scope="session")
def chromium() -> str:
    return require_binary("chromium", "chromium", ("chromium-browser", "google-chrome"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen) -> None:
    """Stop one child we started (SIGTERM, then SIGKILL), by its pid."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def wait_http(url: str, timeout: float, server: subprocess.Popen) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout:g}s")


class ServerOutput:
    """The server's output, read as it comes (a thread): the URL with this launch's token is
    in it, and the test checks the whole of it for tracebacks at the end."""

    def __init__(self, server: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(server,), daemon=True)
        self.thread.start()

    def _read(self, server: subprocess.Popen) -> None:
        assert server.stdout is not None
        for raw in iter(server.stdout.readline, b""):
            self.lines.append(raw.decode(errors="replace"))

    def url(self, timeout: float, server: subprocess.Popen) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = re.search(r"http://127\.0\.0\.1:\d+/\?token=[\w-]+", line)
                if found:
                    return found.group(0)
            if server.poll() is not None:
                raise AssertionError(f"the server exited with {server.returncode}")
            time.sleep(0.1)
        raise AssertionError("the server printed no URL with a token:\n" + "".join(self.lines))

    def text(self) -> str:
        self.thread.join(timeout=10)
        return "".join(self.lines)


def terminal_text(frames: list[bytes]) -> str:
    """The bytes the server relayed to xterm.js (binary frames), escape sequences removed."""
    return ANSI.sub(b"", b"".join(frames)).decode("utf-8", "replace")


class Cdp:
    """A minimal Chrome DevTools Protocol client over aiohttp (textual-serve depends on it)."""

    def __init__(self, ws) -> None:  # type: ignore[no-untyped-def]
        self.ws, self.next_id = ws, 0
        self.events: list[dict] = []

    async def call(self, method: str, **params: object) -> dict:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            message = json.loads((await self.ws.receive(timeout=30)).data)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    async def pump(self, seconds: float) -> None:
        try:
            while True:
                message = await self.ws.receive(timeout=seconds)
                self.events.append(json.loads(message.data))
        except asyncio.TimeoutError:
            pass


async def drive_browser(devtools_port: int, url: str, shot: Path) -> tuple[str, bool, int]:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{devtools_port}/json/list") as response:
            targets = await response.json()
        page = next(t for t in targets if t.get("type") == "page")
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            cdp = Cdp(ws)
            await cdp.call("Network.enable")
            await cdp.call("Network.setBlockedURLs", urls=BLOCKED)
            await cdp.call("Page.enable")
            await cdp.call("Page.navigate", url=url)
            deadline = time.monotonic() + 40
            text = ""
            while time.monotonic() < deadline:
                await cdp.pump(0.5)
                frames = [base64.b64decode(e["params"]["response"]["payloadData"])
                          for e in cdp.events if e.get("method") == "Network.webSocketFrameReceived"
                          and e["params"]["response"]["opcode"] == 2]  # text frames: pongs
                text = terminal_text(frames)
                if all(t in text for t in SETUP_TEXTS):
                    break
            await cdp.pump(1.0)  # let xterm.js paint before the screenshot
            state = await cdp.call("Runtime.evaluate", returnByValue=True, expression=(
                "document.body.classList.contains('-first-byte') && "
                "!document.body.classList.contains('-closed') && "
                "!!document.querySelector('.textual-terminal canvas, .textual-terminal .xterm')"))
            image = await cdp.call("Page.captureScreenshot", format="png")
            shot.write_bytes(base64.b64decode(image["data"]))
            requests = [e["params"]["request"]["url"] for e in cdp.events
                        if e.get("method") == "Network.requestWillBeSent"]
            off_box = [u for u in requests if not re.match(r"(https?|wss?)://127\.0\.0\.1[:/]", u)
                       and not u.startswith("data:")]
            # The only request off this machine is the page's web font, and it was blocked.
            assert all("fonts.googleapis.com" in u for u in off_box), off_box
            return text, bool(state["result"].get("value")), len(requests)


@pytest.mark.slow
def test_serve_in_headless_chromium(chromium: str, tmp_path: Path) -> None:
    port, devtools_port = free_port(), free_port()
    env = {**os.environ, "AIPERF_CONFIG": str(tmp_path / "none.toml"),
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                         if p)}
    env.pop("NO_COLOR", None)
    server = subprocess.Popen(
        [*workbench_command(), "--home", str(tmp_path / "home"), "serve", "--port", str(port),
         "--host", "127.0.0.1"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True)
    browser: subprocess.Popen | None = None
    output = ServerOutput(server)
    try:
        url = output.url(30, server)  # the token of this launch is in it, as Jupyter prints it
        html = wait_http(url, 30, server)
        assert f"ws://127.0.0.1:{port}/ws" in html and "aiperf workbench" in html
        browser = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-extensions", "--mute-audio",
             f"--user-data-dir={tmp_path / 'profile'}", "--remote-debugging-address=127.0.0.1",
             f"--remote-debugging-port={devtools_port}", "--window-size=1200,800",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        wait_http(f"http://127.0.0.1:{devtools_port}/json/version", 30, browser)
        shot = Path(os.environ.get("AIPERF_SERVE_SCREENSHOT", tmp_path / "serve.png"))
        text, painted, requests = asyncio.run(
            drive_browser(devtools_port, url, shot))
        for expected in SETUP_TEXTS:
            assert expected in text, f"{expected!r} not sent to the page:\n{text[-3000:]}"
        assert painted, "the page did not show the terminal"
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert width == 1200 and 400 < height <= 800 and len(data) > 20_000  # not a blank page
    finally:
        if browser is not None:
            stop(browser)
        stop(server)
    text = output.text()
    assert url.split("token=")[1] not in text.replace(url, ""), "the token was logged"
    # Stopping textual-serve by signal can leave one known shutdown message from asyncio: a
    # subprocess transport collected after its loop closed ("Event loop is closed" raised in
    # BaseSubprocessTransport.__del__). It says nothing about our app; any other traceback does.
    tracebacks = text.split("Traceback (most recent call last):")[1:]
    ours = [t for t in tracebacks
            if not ("base_subprocess.py" in t and "Event loop is closed" in t)]
    assert not ours, text


def test_serve_rejects_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([*workbench_command(), "serve", "--port", str(port)],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
