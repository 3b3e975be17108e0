"""`POST /hooks/{name}`: a webhook starts a run of the event `name` with the request's
JSON body as its input.

Checked in this order, each failure a short JSON answer and nothing else:
  413 the body is over CRONIUM_WEBHOOK_BODY_LIMIT (before anything is looked up)
  401 no such hook, the caller's address is not allowed, or the credentials are wrong:
      one answer for all, so hook names cannot be probed
  429 the hook's rate is spent (Retry-After says for how long)
  415 / 422 not JSON, or invalid JSON (or nested too deep)
  409 the event is paused, a draft or archived
  202 the run's id and where to read its status

Neither the body nor a secret is ever logged or recorded: the audit log keeps who called
which hook, from where, and how it ended.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from prefect.blocks.system import Secret
from prefect.client.orchestration import PrefectClient
from prefect.exceptions import ObjectNotFound
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import ClientDisconnect

from cronium_prefect.access import Actor, AuditAction, Permission, Role
from cronium_prefect.caps import InputTooLarge, NestedTooDeep, check_input, load_json
from cronium_prefect.errors import EventNotFound
from cronium_prefect.event import EventStatus, is_event_name
from cronium_prefect.flows.resolve import read_runnable
from cronium_prefect.flows.status import deployed_status
from cronium_prefect.names import WEBHOOK_TAG, Trigger
from cronium_prefect.webhook import (
    GITHUB_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Webhook,
    WebhookAuth,
    github_sign,
    sign,
    signature_matches,
)

from . import audit
from .store import Store, StoreUnavailable
from .tokens import PREFIX, token_actor

__all__ = ["Hooks", "bearer"]

logger = logging.getLogger("cronium.service")
_UNAUTHORIZED = "no such hook, or the credentials are missing or wrong"
_SEEN_LIMIT = 100_000  # signatures remembered within their replay windows
# A Secret block's value is kept this long (its load is three API calls, a third of a
# webhook's time): a changed secret takes effect within it.
SECRET_TTL_S = 10.0


class Refused(Exception):
    """A request answered with `status` and `message` (and recorded as refused)."""

    def __init__(
        self,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        actor: Actor | None = None,  # who was refused, when known (a token out of scope)
    ):
        super().__init__(message)
        self.status, self.message, self.headers, self.actor = status, message, headers, actor


@dataclass
class Hooks:
    """The webhook endpoint's state: one per service process (the rate limits and the
    signatures already seen are this process's)."""

    store: Store
    client: PrefectClient
    body_limit: int
    input_limit: int

    def __post_init__(self) -> None:
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.seen: OrderedDict[str, float] = OrderedDict()  # signature -> when it expires
        self.secrets: dict[str, tuple[str | None, float]] = {}  # block -> (value, until)
        self.refusals = audit.RefusalGate()

    async def handle(self, name: str, request: Request) -> JSONResponse:
        source = request.client.host if request.client else ""
        # A path that is no event name is not written anywhere as one (terminal codes).
        shown = name if is_event_name(name) else "?"
        caller = Actor("webhook", shown, source, Role.operator)
        try:
            try:
                body = await self._body(request)
            except ClientDisconnect:  # it closed before its body: nobody to answer
                return JSONResponse({"error": "the request ended before its body"}, 400)
            caller, deployment, hook = await self._authenticated(name, request, body, source)
            await self._within_rate(name, hook.rate)
            data = self._json(request, body)
            status = deployed_status(deployment.paused, deployment.tags)
            if status != EventStatus.active:
                raise Refused(409, f"the event {name} is {status.value}: it starts no runs")
            run = await self.client.create_flow_run_from_deployment(
                deployment.id,
                parameters={"input": data, "trigger": Trigger.WEBHOOK.value},
                tags=[Trigger.WEBHOOK.tag, f"{WEBHOOK_TAG}{name}"],
            )
        except Refused as refused:
            admitted = await self.refusals.admit(source)
            if admitted is not None:
                await audit.record(
                    self.store,
                    refused.actor or caller,
                    AuditAction.trigger,
                    shown,
                    audit.REFUSED,
                    status=refused.status,
                    reason=refused.message,
                    **admitted,
                )
            return JSONResponse(
                {"error": refused.message}, status_code=refused.status, headers=refused.headers
            )
        try:
            await audit.record(
                self.store, caller, AuditAction.trigger, name, audit.OK, run_id=str(run.id)
            )
        except (SQLAlchemyError, StoreUnavailable) as exc:  # the run exists: still a 202
            logger.error(
                "run %s of %s started; the audit log did not take it: %s", run.id, name, exc
            )
        status_url = str(request.url_for("run_status", run_id=str(run.id)))
        return JSONResponse(
            {"run_id": str(run.id), "event": name, "status_url": status_url}, status_code=202
        )

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.body_limit:
            raise Refused(413, f"the body is over the limit of {self.body_limit} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.body_limit:
                raise Refused(413, f"the body is over the limit of {self.body_limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _authenticated(
        self, name: str, request: Request, body: bytes, source: str
    ) -> tuple[Actor, Any, Webhook]:
        """Who calls, the event's deployment and its hook; Refused(401) for every no."""
        if not is_event_name(name):
            raise Refused(401, _UNAUTHORIZED)
        try:
            deployment = await read_runnable(self.client, name)  # an event, or a workflow
        except EventNotFound:
            raise Refused(401, _UNAUTHORIZED) from None
        parameters = deployment.parameters or {}
        definition = parameters.get("event") or parameters.get("workflow") or {}
        try:
            hook = Webhook.model_validate(definition["webhook"])
        except (KeyError, TypeError, ValidationError):
            raise Refused(401, _UNAUTHORIZED) from None  # no webhook declared
        if not hook.admits(source):
            logger.warning("hook %s: refused %s, not in its allow list", name, source)
            raise Refused(401, _UNAUTHORIZED)
        actor = await self._caller(name, hook, request, body, source)
        if actor is None:
            logger.warning("hook %s: refused %s, bad or missing credentials", name, source)
            raise Refused(401, _UNAUTHORIZED)
        return actor, deployment, hook

    async def _caller(
        self, name: str, hook: Webhook, request: Request, body: bytes, source: str
    ) -> Actor | None:
        webhook = Actor("webhook", name, source, Role.operator)
        if hook.auth == WebhookAuth.token:
            presented = bearer(request)
            if presented is None:
                return None
            if presented.startswith(PREFIX):
                actor = await token_actor(self.store, presented, source)
                if actor is not None and not actor.may(Permission.run, name):
                    raise Refused(401, _UNAUTHORIZED, actor=actor)  # recorded as the token
                return actor
            secret = await self._secret(hook)
            return webhook if secret is not None and signature_matches(secret, presented) else None
        secret = await self._secret(hook)
        if secret is None:
            return None
        if hook.auth == WebhookAuth.github:
            given = request.headers.get(GITHUB_HEADER)
            return webhook if signature_matches(github_sign(secret, body), given) else None
        stamp = request.headers.get(TIMESTAMP_HEADER, "")
        given = request.headers.get(SIGNATURE_HEADER)
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            return None
        if abs(time.time() - int(stamp)) > hook.replay_window:
            return None
        expected = sign(secret, stamp, body)
        if not signature_matches(expected, given):
            return None
        # Acceptable until its timestamp leaves the window: remembered until then.
        return webhook if self._first_time(expected, int(stamp) + hook.replay_window) else None

    def _first_time(self, signature: str, acceptable_until: float) -> bool:
        """Whether a valid signature is new: the same signed request sent again while its
        timestamp is still acceptable is a replay. Bounded: past _SEEN_LIMIT the oldest
        entries are forgotten first (the documented limit)."""
        now = time.time()
        while self.seen and next(iter(self.seen.values())) < now:
            self.seen.popitem(last=False)
        if self.seen.get(signature, 0.0) >= now:
            return False
        if len(self.seen) >= _SEEN_LIMIT:
            self.seen.popitem(last=False)
        self.seen[signature] = acceptable_until
        return True

    async def _secret(self, hook: Webhook) -> str | None:
        if hook.secret is None:  # a token hook that takes API tokens only
            return None
        name = hook.secret
        value, until = self.secrets.get(name, (None, 0.0))
        if time.monotonic() < until:
            return value
        try:
            block = await Secret.aload(name, client=self.client)
        except (ValueError, ObjectNotFound):
            logger.warning("the Secret block %r of a webhook does not exist", name)
            value = None
        else:
            value = block.value.get_secret_value()
            value = value if isinstance(value, str) and value else None
        if len(self.secrets) > 10_000:  # one per hook's block: bounded all the same
            self.secrets.clear()
        self.secrets[name] = (value, time.monotonic() + SECRET_TTL_S)
        return value

    async def _within_rate(self, event: str, hook_rate: str | None) -> None:
        """Counted per hook after authentication: callers without credentials cannot spend
        the rate of the hook's real sender."""
        if hook_rate is None:
            return
        item = parse(hook_rate)
        if not await self.limiter.hit(item, event):
            stats = await self.limiter.get_window_stats(item, event)
            wait = max(1, math.ceil(stats.reset_time - time.time()))
            raise Refused(
                429, f"the hook's rate of {hook_rate} is spent", {"Retry-After": str(wait)}
            )

    def _json(self, request: Request, body: bytes) -> Any:
        if not body.strip():
            return None
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json" and not kind.endswith("+json"):
            raise Refused(415, "send the body as JSON (Content-Type: application/json)")
        try:
            text = body.decode("utf-8")
            data = load_json(text, "the body")
            _finite(data)
            check_input(data, self.input_limit, "the body")
        except (UnicodeDecodeError, ValueError) as exc:
            raise Refused(422, f"the body is not valid JSON: {_short(exc)}") from None
        except NestedTooDeep as exc:
            raise Refused(422, str(exc)) from None
        except InputTooLarge as exc:
            raise Refused(413, str(exc)) from None
        return data


def _finite(value: Any) -> None:
    """JSON has no NaN or Infinity (Python's parser reads them): refused as invalid."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("NaN and Infinity are not JSON")
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _short(exc: Exception) -> str:
    return str(exc).split("\n")[0][:200]


def bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
