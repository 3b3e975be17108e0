"""The sign-in and sign-out pages, served beside Streamlit's (server.py): a plain form, so
that the session lands in an HttpOnly cookie that survives a page refresh and that no
script in a page can read (a Streamlit widget can set neither).

    GET  /signin    the form
    POST /signin    check the password (argon2), start a session, set the cookie, go to /
    GET  /signout   end the session and drop the cookie

Every sign-in is recorded in the audit log, and refusals up to 30 a minute per address
(then counted); an address gets 10 attempts a minute. A form posted from another site is
refused.
"""

from __future__ import annotations

import html
from urllib.parse import parse_qs, urlsplit

from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from cronium_prefect.access import Actor, AuditAction, Role
from cronium_prefect.service import audit
from cronium_prefect.service.sessions import LIFETIME, end_session, start_session
from cronium_prefect.service.store import Store
from cronium_prefect.service.users import MAX_PASSWORD, NAME, authenticate

from .auth import COOKIE

__all__ = ["ROUTES"]

_ATTEMPTS = parse("10/minute")
_limiter = MovingWindowRateLimiter(MemoryStorage())
_refusals = audit.RefusalGate()
_FORM_LIMIT = 4096  # bytes of a sign-in form
_store: Store | None = None

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Cronium: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: sans-serif; background: #f6f7f9; display: flex; justify-content: center;
       padding-top: 12vh; margin: 0; }}
form {{ background: #fff; padding: 2rem 2.5rem; border-radius: 8px; width: 20rem;
       box-shadow: 0 1px 4px rgba(0,0,0,.12); }}
label {{ display: block; margin-top: 1rem; font-size: .9rem; }}
input {{ width: 100%; padding: .5rem; margin-top: .25rem; box-sizing: border-box; }}
button {{ margin-top: 1.5rem; width: 100%; padding: .6rem; background: #ff4b4b; color: #fff;
         border: 0; border-radius: 4px; font-size: 1rem; }}
.error {{ color: #b00020; margin-top: 1rem; }}
</style></head><body>
<form method="post" action="signin">
<h2>Cronium</h2>
<label>User <input name="user" id="user" autocomplete="username" required
 maxlength="64" value="{user}" autofocus></label>
<label>Password <input name="password" id="password" type="password" required
 autocomplete="current-password" maxlength="{max_password}"></label>
<button type="submit" id="sign-in">Sign in</button>
{error}
</form></body></html>"""


def _page(user: str = "", error: str = "", status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        _PAGE.format(
            user=html.escape(user, quote=True),
            max_password=MAX_PASSWORD,
            error=f'<p class="error" id="error">{html.escape(error)}</p>' if error else "",
        ),
        status_code=status,
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )


def _db() -> Store:
    global _store
    if _store is None:
        _store = Store(pooled=True)  # this route's own loop: uvicorn's
    return _store


def _source(request: Request) -> str:
    return request.client.host if request.client else "dashboard"


async def _form(request: Request) -> dict[str, str] | None:
    body = b""
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > _FORM_LIMIT:
                return None
    except ClientDisconnect:
        return None
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=10, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    return {key: values[0] for key, values in fields.items()}


def _same_origin(request: Request) -> bool:
    """A browser names the page a form came from: another site's form (signing a victim in
    to the attacker's account) is refused. No Origin (curl, old browsers): allowed."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


async def _refused(who: Actor, name: str, **detail: str) -> None:
    admitted = await _refusals.admit(who.source)
    if admitted is not None:
        await audit.record(
            _db(), who, AuditAction.sign_in, name, audit.REFUSED, **detail, **admitted
        )


async def signin(request: Request) -> Response:
    if request.method == "GET":
        return _page()
    source = _source(request)
    form = await _form(request)
    name = (form or {}).get("user", "")[:64]
    # Not yet anyone: a name typed in a form is a claim (never counted as that user's).
    who = Actor("visitor", name if NAME.fullmatch(name) else "?", source, Role.viewer)
    if not _same_origin(request):
        await _refused(who, who.name, reason="another site's form")
        return _page("", "Sign in from this page.", 403)
    if not await _limiter.hit(_ATTEMPTS, "signin", source):
        await _refused(who, who.name, reason="rate")
        return _page(name, "Too many attempts from this address: wait a minute.", 429)
    user = await authenticate(_db(), name, (form or {}).get("password", "")) if form else None
    if user is None:
        await _refused(who, who.name)
        return _page(name, "Wrong user name or password.", 401)
    cookie = await start_session(_db(), user.id)
    await audit.record(
        _db(), Actor("user", user.name, source, user.role), AuditAction.sign_in, user.name
    )
    response = RedirectResponse("./", status_code=303)
    # Behind a TLS proxy the request here is plain HTTP: the proxy's word is enough, as a
    # Secure cookie only ever narrows where the browser sends it.
    secure = request.url.scheme == "https" or (
        request.headers.get("x-forwarded-proto", "").lower() == "https"
    )
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=secure,
    )
    return response


async def signout(request: Request) -> Response:
    await end_session(_db(), request.cookies.get(COOKIE))
    response = RedirectResponse("signin", status_code=303)
    response.delete_cookie(COOKIE)
    return response


ROUTES = [
    Route("/signin", signin, methods=["GET", "POST"]),
    Route("/signout", signout, methods=["GET"]),
]
