"""The token gate: with ``http_token`` set, every request needs it (DESIGN 6).

API calls, ``/openapi.json`` and ``/metrics`` carry it as ``Authorization: Bearer
<token>`` and are answered 401 without it; the dashboard asks for it once in a form
(``/login``) and keeps it in a cookie (``HttpOnly``, ``SameSite=Strict``). ``GET
/api/health`` answers without it, saying only ``{"status": "ok"}``. Tokens are
compared in constant time.

Whatever the token, a request that changes something (any method but GET, HEAD and
OPTIONS) from a page of another origin is refused with 403: the API's actions take no
body a browser form could not send, so a page elsewhere must not reach them through a
signed-in (or loopback) dashboard.

Without a token, only requests addressed to this machine by a loopback name are served
(``Host`` is ``localhost``, an address of ``127.0.0.0/8`` or ``[::1]``, any port); any
other is refused with 403. A page of another site cannot otherwise be stopped from
reaching a loopback server: it points its own name at 127.0.0.1 (DNS rebinding), and
its requests are then same-origin, but they still carry its name. With a token the
name is not checked (the token is what a page elsewhere cannot have).

Bodies are capped: :data:`MAX_LOGIN_BODY` for the sign-in form, :data:`MAX_API_BODY`
for anything else; a larger one is refused with 413 before it is read whole.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.limits import shown

COOKIE = "runtime_token"
"""The cookie the dashboard keeps the token in."""

AUTHORIZED = "runtime.authorized"
"""The scope key saying whether the request carried the token (True when none is set)."""

OPEN_PATHS = frozenset({"/api/health", "/login"})
"""Paths served without the token (health answers less without it)."""

BEARER_PATHS = ("/api/", "/metrics", "/openapi.json")
"""Paths that answer 401 rather than sending a browser to the sign-in form."""

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

MAX_LOGIN_BODY = 16 * 1024
"""The largest sign-in form taken, in bytes (a token and a path fit many times over)."""

MAX_API_BODY = 1024 * 1024
"""The largest body any other request may send, in bytes (a run's input, an event)."""


def route_path(scope: Scope) -> str:
    """The request's path inside the app (without the prefix it is mounted at)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] or "/" if root and path.startswith(root) else path


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _given(headers: dict[str, str]) -> str | None:
    """The token a request carries: its bearer token, else the dashboard's cookie."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header carries no token
        return None
    morsel = cookie.get(COOKIE)
    return morsel.value if morsel is not None else None


def matches(given: str | None, token: str) -> bool:
    """``given`` is ``token``, compared in constant time."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def loopback_host(host: str | None) -> bool:
    """``host`` (a ``Host`` header) names this machine: ``localhost``, an address of
    ``127.0.0.0/8`` or ``::1`` (``[::1]``), with or without a port."""
    if not host:
        return False
    name, port = host.lower(), ""
    if name.startswith("["):
        name, bracket, port = name[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            return False
        port = port[1:]
    elif name.count(":") == 1:
        name, _, port = name.partition(":")
    if port and not (port.isascii() and port.isdigit()):
        return False
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _cross_origin(headers: dict[str, str]) -> bool:
    """A browser sent this from a page of another origin (scheme, host and port)."""
    origin = headers.get("origin")
    if origin is None or origin == "null":
        return origin == "null"
    return urlsplit(origin).netloc.lower() != headers.get("host", "").lower()


class TokenGate:
    """ASGI middleware: lets a request through when it carries the token (or none is set).

    Args:
        app: the app behind the gate.
        token: the token every request needs; ``None`` lets every request through
            (allowed only on a loopback address: :func:`runtime.config.check_exposure`).
        loopback_only: without a token, refuse requests whose ``Host`` is not a
            loopback name (:func:`loopback_host`); ignored with a token.
    """

    def __init__(self, app: ASGIApp, token: str | None, loopback_only: bool = True) -> None:
        self.app = app
        self.token = token
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        path = route_path(scope)
        refused = self._refusal(headers, scope["method"])
        if refused is not None:
            await refused(scope, receive, send)
            return
        authorized = self.token is None or matches(_given(headers), self.token)
        scope[AUTHORIZED] = authorized
        if authorized or path in OPEN_PATHS:
            await _capped(self.app, MAX_LOGIN_BODY if path == "/login" else MAX_API_BODY)(
                scope, receive, send
            )
            return
        if path.startswith(BEARER_PATHS):
            message = "this server needs its token: send 'Authorization: Bearer <token>'"
            if _given(headers) is not None:
                message = "wrong token"
            response: Response = _error(401, "Unauthorized", message)
            response.headers["WWW-Authenticate"] = 'Bearer realm="runtime"'
        else:
            root = scope.get("root_path", "")
            query = scope.get("query_string", b"").decode("latin-1")
            target = path + (f"?{query}" if query else "")
            response = RedirectResponse(f"{root}/login?next={quote(target)}", status_code=303)
        await response(scope, receive, send)

    def _refusal(self, headers: dict[str, str], method: str) -> Response | None:
        """403 for a request this server must not serve whoever sends it, else ``None``."""
        host = headers.get("host")
        if self.token is None and self.loopback_only and not loopback_host(host):
            named = "no Host header" if host is None else f"Host {shown(host)}"
            return _error(
                403,
                "ForbiddenHost",
                f"this server has no token, so it serves only requests addressed to a "
                f"loopback name (localhost, 127.0.0.1, [::1]); this one has {named}: a page "
                "of another site may be reaching it through DNS rebinding. To serve other "
                "names, set http_token",
            )
        if method not in SAFE_METHODS and _cross_origin(headers):
            return _error(403, "Forbidden", "a request from a page of another origin")
        return None


def _capped(app: ASGIApp, limit: int) -> ASGIApp:
    """``app`` behind a check that the request's body is at most ``limit`` bytes.

    A ``Content-Length`` past the limit is refused unread; a body sent in chunks is
    read up to the limit (the app reads it whole anyway) and handed on in one piece.
    """

    async def capped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] in SAFE_METHODS:
            await app(scope, receive, send)
            return
        too_large = _error(
            413,
            "PayloadTooLarge",
            f"the body is too large: {route_path(scope)} takes at most {limit} bytes",
        )
        declared = _headers(scope).get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                bad = _error(400, "BadRequest", f"Content-Length {shown(declared)} is not a number")
                await bad(scope, receive, send)
                return
            digits = declared.lstrip("0")
            if len(digits) > len(str(limit)) or int(digits or "0") > limit:
                await too_large(scope, receive, send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body: list[Message] = [{"type": "http.request", "body": b"".join(chunks)}]

        async def replay() -> Message:
            return body.pop() if body else await receive()

        await app(scope, replay, send)

    return capped


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


def _safe_next(value: str | None) -> str:
    """A path inside the app to go back to after signing in (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · runtime</title>
<style>
body{{font:16px/1.5 system-ui,sans-serif;background:#f6f7f9;color:#1c2330;
display:grid;place-items:center;min-height:100vh;margin:0}}
form{{background:#fff;border:1px solid #dde1e7;border-radius:10px;padding:28px;
width:min(360px,90vw)}}
h1{{font-size:20px;margin:0 0 4px}} p{{margin:0 0 16px;color:#5b6475}}
input{{width:100%;box-sizing:border-box;padding:9px;font:inherit;border:1px solid #c4cad3;
border-radius:6px}} button{{margin-top:12px;width:100%;padding:9px;font:inherit;border:0;
border-radius:6px;background:#2f5bd3;color:#fff;cursor:pointer}}
.error{{color:#b42318}}
</style></head><body>
<form method="post" action="{action}">
<h1>runtime</h1><p>This dashboard needs its token (<code>http_token</code>).</p>
{error}<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus>
<input type="hidden" name="next" value="{next}">
<button type="submit">Sign in</button>
</form></body></html>"""


def _form(request: Request, next_path: str, error: str = "") -> str:
    shown = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    action = html.escape(str(request.scope.get("root_path", "")) + "/login")
    return _FORM.format(action=action, next=html.escape(next_path), error=shown)


async def login_form(request: Request) -> Response:
    """The sign-in form (or straight on when the request already carries the token)."""
    next_path = _safe_next(request.query_params.get("next"))
    if request.scope.get(AUTHORIZED, True):
        return RedirectResponse(request.scope.get("root_path", "") + next_path, status_code=303)
    return HTMLResponse(_form(request, next_path))


async def login(request: Request) -> Response:
    """Check the token from the form; keep it in a cookie and go back to the page."""
    token: str | None = request.app.state.token
    fields: dict[str, Any] = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    next_path = _safe_next(fields.get("next"))
    root = str(request.scope.get("root_path", ""))
    if token is None:
        return RedirectResponse(root + next_path, status_code=303)
    if not matches(fields.get("token"), token):
        return HTMLResponse(_form(request, next_path, "That is not the token."), status_code=401)
    response = RedirectResponse(root + next_path, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        path=root or "/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def logout(request: Request) -> Response:
    """Forget the token the browser keeps."""
    root = str(request.scope.get("root_path", ""))
    response = RedirectResponse(root + "/login", status_code=303)
    response.delete_cookie(COOKIE, path=root or "/")
    return response


def routes() -> list[BaseRoute]:
    """``/login`` (the form and its post) and ``/logout``."""
    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
