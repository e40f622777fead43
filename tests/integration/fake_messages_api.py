"""A local stand-in for the Anthropic Messages API on 127.0.0.1: POST /v1/messages answers with
the SSE event stream the real API sends (message_start, content_block_*, message_delta,
message_stop), or with a 401 / 429 error body, or too late (a timeout). It records every
request (headers and body) so tests can check what left the machine."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER_CHUNKS = ["1. Sort tokens by expert ", "and use a grouped GEMM ", "(dispatch share above)."]


class FakeMessagesAPI:
    def __init__(self, mode: str = "ok", delay_s: float = 0.0) -> None:
        self.mode = mode  # ok | 401 | 429 | slow
        self.delay_s = delay_s
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                server.requests.append({"path": self.path, "headers": dict(self.headers),
                                        "raw": raw.decode("utf-8", "replace"),
                                        "body": json.loads(raw or b"{}")})
                if server.mode == "slow":
                    time.sleep(server.delay_s or 3.0)
                if server.mode in ("401", "429"):
                    status = int(server.mode)
                    kind = {401: "authentication_error", 429: "rate_limit_error"}[status]
                    body = json.dumps({"type": "error", "error": {"type": kind, "message": kind}})
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body.encode())
                    return
                self._stream(server.requests[-1]["body"])

            def _stream(self, body: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.end_headers()
                model = body.get("model", "fake-model")

                def event(name: str, data: dict[str, Any]) -> None:
                    self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                    self.wfile.flush()

                event("message_start", {"type": "message_start", "message": {
                    "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
                    "content": [], "stop_reason": None, "stop_sequence": None,
                    "usage": {"input_tokens": 42, "output_tokens": 1}}})
                event("content_block_start", {"type": "content_block_start", "index": 0,
                                              "content_block": {"type": "text", "text": ""}})
                for chunk in ANSWER_CHUNKS:
                    event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                  "delta": {"type": "text_delta", "text": chunk}})
                event("content_block_stop", {"type": "content_block_stop", "index": 0})
                event("message_delta", {"type": "message_delta",
                                        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                        "usage": {"output_tokens": 17}})
                event("message_stop", {"type": "message_stop"})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FakeMessagesAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
