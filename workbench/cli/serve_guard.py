"""Who may drive `aiperf-workbench serve`: the holder of this launch's token, from a page this
server served, addressed by a name this server answers to.

The app behind the websocket starts workloads on this machine, so every HTTP and websocket
request must carry the random token printed at launch (as Jupyter does): ``?token=`` in the
URL, an ``Authorization: token ...`` header, or the cookie the first authenticated page load
sets (HttpOnly, SameSite=Strict, so the page's own websocket and assets carry it and no
other site's requests do). Two more checks stop a web page in the user's browser:

- Host: only names this server answers to (loopback names, the --host given, this machine's
  names, or a literal IP address). DNS rebinding points a name the attacker owns at
  127.0.0.1, and the browser then sends that name as Host.
- Origin: when a browser sends one (it always does on a websocket), it must be this very
  server (same host and port as the Host header).

Refusals are plain 403s (401 when the token is missing) and are logged without the token.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import secrets
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

log = logging.getLogger("aiperf-workbench.serve")
TOKEN_PARAM = "token"


def new_token() -> str:
    return secrets.token_urlsafe(32)


class _HideToken(logging.Filter):
    """The access log shows request URLs: not the token in them."""

    _TOKEN = re.compile(r"(token=)[^&\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "token=" in record.msg:
            record.msg = self._TOKEN.sub(r"\1[hidden]", record.msg)
        return True


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split_host(value: str) -> tuple[str, int | None]:
    """'name:port' / '[::1]:port' / 'name' -> (lower-case host, port or None)."""
    try:
        parts = urlsplit("//" + value)
        return (parts.hostname or "").lower(), parts.port
    except ValueError:
        return "", None


class Guard:
    """The checks above for one server (its bind host and port, one token)."""

    def __init__(self, token: str, bind_host: str, port: int) -> None:
        self.token = token
        self.port = port
        self.cookie = f"aiperf_token_{port}"
        names = {"localhost", "127.0.0.1", "::1"}
        if bind_host not in ("0.0.0.0", "::", ""):
            names.add(bind_host.strip("[]").lower())
        if not is_loopback(bind_host):  # reachable from elsewhere: this machine's names too
            for name in (socket.gethostname(), socket.getfqdn()):
                if name:
                    names.add(name.lower())
        self.allowed_names = names

    def host_allowed(self, host_header: str | None) -> bool:
        host, port = _split_host(host_header or "")
        if not host or (port is not None and port != self.port):
            return False
        if host in self.allowed_names:
            return True
        try:  # a literal address cannot be rebound by DNS
            ipaddress.ip_address(host)
            return True
        except ValueError:
            return False

    def origin_allowed(self, origin: str | None, host_header: str | None) -> bool:
        if origin is None:  # not a browser request (curl, a script): the token decides
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False  # "null" (sandboxed frames, file://) included
        try:
            origin_port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return False
        host, port = _split_host(host_header or "")
        return parts.hostname.lower() == host and origin_port == (port or 80)

    def token_of(self, request: web.Request) -> tuple[str | None, bool]:
        """The token the request carries and whether it came in the URL."""
        from_url = request.query.get(TOKEN_PARAM)
        if from_url:
            return from_url, True
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("token "):
            return header[6:].strip(), False
        return request.cookies.get(self.cookie), False

    def token_valid(self, token: str | None) -> bool:
        return token is not None and token != "" and \
            hmac.compare_digest(token.encode(), self.token.encode())

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        host = request.headers.get("Host")
        if not self.host_allowed(host):
            log.warning("refused %s %s: Host %r is not this server", request.method,
                        request.path, host)
            return web.Response(status=403, text="403: Host not allowed\n")
        origin = request.headers.get("Origin")
        if not self.origin_allowed(origin, host):
            log.warning("refused %s %s: Origin %r is not this server", request.method,
                        request.path, origin)
            return web.Response(status=403, text="403: cross-origin request refused\n")
        token, from_url = self.token_of(request)
        if not self.token_valid(token):
            log.warning("refused %s %s: %s token", request.method, request.path,
                        "wrong" if token else "no")
            return web.Response(status=401 if not token else 403,
                                text="401: open the URL printed by `aiperf-workbench serve` "
                                     "(it carries the token)\n")
        response = await handler(request)
        if from_url and not response.prepared:
            response.set_cookie(self.cookie, self.token, httponly=True, samesite="Strict",
                                path="/")
        return response


def guarded_server(command: str, host: str, port: int, title: str, token: str) -> Any:
    """textual-serve's Server with the guard in front of every route, printing the URL with
    the token in it."""
    from textual_serve.server import Server

    guard = Guard(token, host, port)
    logging.getLogger("aiohttp.access").addFilter(_HideToken())

    class GuardedServer(Server):  # type: ignore[misc]
        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            app.middlewares.append(guard.middleware)
            return app

        async def on_startup(self, app: web.Application) -> None:
            shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
            shown = f"[{shown}]" if ":" in shown else shown
            url = f"http://{shown}:{port}/?{TOKEN_PARAM}={token}"
            print(f"aiperf-workbench serve: open {url}", flush=True)
            print("  (the token in this URL is required on every request; Ctrl+C stops the "
                  "server)", flush=True)

    return GuardedServer(command, host=host, port=port, title=title)
