"""The Event model: SPEC §2 as pydantic, validated once, at the edge.

Everything downstream (deployments, the flow, executors) receives an `Event` that is
already valid; nothing re-checks fields later.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from .durations import Duration
from .sizes import size_bytes
from .variables import check_key
from .webhook import Webhook

__all__ = [
    "Event",
    "EventType",
    "EventStatus",
    "RunLocation",
    "Priority",
    "Schedule",
    "Resources",
    "HttpRequest",
    "ToolMessage",
    "SendMessage",
    "Action",
    "TRIGGER_WORDS",
    "SCRIPT_TYPES",
    "NAME_PATTERN",
    "is_event_name",
]

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,99}$"


def is_event_name(value: object) -> bool:
    """Whether `value` is an event's name: text that may go into an API path or a page."""
    return isinstance(value, str) and re.fullmatch(NAME_PATTERN, value) is not None


POOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"  # a work pool's name, as Cronium makes it
MAX_DECLARED_VARIABLES = 100  # global and owner's documents: one page (200) of the API
# What Prefect accepts as a block name: anything else names no server, and must never be
# put into an API path (`..` would reach another endpoint).
SERVER_NAME_PATTERN = r"[a-z0-9-]{1,100}"
ENV_KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TRIGGER_WORDS = ("success", "failure", "always", "condition")


class EventType(str, Enum):
    bash = "bash"
    python = "python"
    node = "node"
    http = "http"
    tool = "tool"


SCRIPT_TYPES = (EventType.bash, EventType.python, EventType.node)


class EventStatus(str, Enum):
    active = "active"
    paused = "paused"
    draft = "draft"
    archived = "archived"


class RunLocation(str, Enum):
    local = "local"
    remote = "remote"


class Priority(str, Enum):
    low = "low"
    normal = "normal"
    high = "high"
    critical = "critical"


class _Strict(BaseModel):
    """Unknown keys are errors: a typo must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False)


def _check_trigger(value: Any) -> Any:
    """`success | failure | always | condition`, or `{all: [...]}` / `{any: [...]}` of them."""
    if isinstance(value, str):
        if value not in TRIGGER_WORDS:
            raise ValueError(
                f"unknown trigger {value!r}; use one of {', '.join(TRIGGER_WORDS)}, "
                "or {all: [...]} / {any: [...]}"
            )
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((op, items),) = value.items()
        if op in ("all", "any") and isinstance(items, list) and items:
            return {op: [_check_trigger(item) for item in items]}
    raise ValueError(
        f"a trigger is one of {', '.join(TRIGGER_WORDS)} or {{all: [...]}} / {{any: [...]}} "
        f"with a non-empty list, got {value!r}"
    )


Trigger = Annotated[str | dict[str, Any], AfterValidator(_check_trigger)]


def _check_name(value: str) -> str:
    if not re.fullmatch(NAME_PATTERN, value):
        raise ValueError(
            "an event name is 1-100 characters of a-z, 0-9 and '-', starting with a letter "
            f"or digit; got {value!r}"
        )
    return value


def _not_prefects(value: str) -> str:
    if value.lower().startswith("prefect"):  # Prefect's API refuses such pool names (403)
        raise ValueError(f"a work pool name may not start with 'prefect', got {value!r}")
    return value


def _size_in_bytes(value: str) -> str:
    if size_bytes(value) < 6 * 1024**2:
        raise ValueError(f"memory must be at least 6m (Docker's minimum), got {value!r}")
    return str(value).strip().lower()


def _env_value(value: Any) -> str:
    """YAML turns `PORT: 8080` into an int; the environment only holds text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and "\0" in value:
        raise ValueError("an environment value cannot hold a NUL character")
    if isinstance(value, (int, float, str)):
        return str(value)
    raise ValueError(f"environment values must be text or numbers, got {type(value).__name__}")


def _check_server_name(value: str) -> str:
    if not re.fullmatch(SERVER_NAME_PATTERN, value):
        raise ValueError(f"a server name is 1-100 characters of a-z, 0-9 and '-'; got {value!r}")
    return value


def _not_a_bool(value: Any) -> Any:
    """`true` is not a number of anything (pydantic would read it as 1)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    return value


def _not_a_number(value: Any) -> Any:
    """A bare number is not a time (pydantic would read it as seconds since 1970)."""
    if isinstance(value, (int, float)):
        raise ValueError(f"expected a date and time like 2030-01-31T09:00:00Z, got {value!r}")
    return value


class Schedule(_Strict):
    """When the event runs by itself. Cron and timezones are checked by Prefect's own models."""

    cron: str | None = Field(default=None, description="Cron expression, e.g. `0 3 * * *`.")
    interval: Duration | None = Field(
        default=None, le=366 * 86400, description="Every N: 30s, 15m, 2h, 1d (at most a year)."
    )
    timezone: str = Field(default="UTC", description="IANA timezone for cron and start_time.")
    start_time: Annotated[datetime, BeforeValidator(_not_a_number)] | None = Field(
        default=None, description="First run at that time; alone, the event runs once then."
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        from prefect.client.schemas.schedules import CronSchedule

        return value if value is None else _prefect_checked(CronSchedule, cron=value).cron

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from prefect.client.schemas.schedules import IntervalSchedule

        _prefect_checked(IntervalSchedule, interval=60, timezone=value)
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        if self.cron is not None and self.interval is not None:
            raise ValueError("give either cron or interval, not both")
        if self.cron is None and self.interval is None and self.start_time is None:
            raise ValueError("a schedule needs cron, interval or start_time")
        if self.interval is not None and self.interval < 1:
            raise ValueError(f"interval must be at least 1s, got {self.interval}s")
        if self.cron is not None and self.start_time is not None:
            raise ValueError(
                "start_time goes with interval (the first run, then every interval) or alone "
                "(run once); a cron schedule has no start time"
            )
        if self.start_time is not None and self.start_time.tzinfo is None:
            # A wall-clock time without offset means that time in the schedule's timezone.
            self.start_time = self.start_time.replace(tzinfo=ZoneInfo(self.timezone))
        return self


def _prefect_checked(model: type[BaseModel], **fields: Any) -> Any:
    """Validate with Prefect's own schedule model: its cron parser and tz database."""
    try:
        return model(**fields)
    except ValidationError as exc:
        raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


class Resources(_Strict):
    """Container limits for local runs; unset ones take the operator's defaults."""

    memory: Annotated[str, AfterValidator(_size_in_bytes)] | None = Field(
        default=None, description="Memory limit, e.g. 256m."
    )
    cpus: Annotated[float, BeforeValidator(_not_a_bool)] | None = Field(
        default=None, gt=0, le=256, description="CPU share, e.g. 0.5."
    )
    pids: StrictInt | None = Field(default=None, ge=8, le=1_000_000, description="Max processes.")
    network: Literal["none", "bridge"] | None = Field(
        default=None, description="`bridge` (outbound access) or `none`."
    )


class HttpRequest(_Strict):
    """The request a `type: http` event makes; text fields are templates."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    url: str = Field(min_length=1, max_length=8192)
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | dict[str, Any] | list[Any] | None = None
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] | None = Field(
        default=None, description="Statuses that count as success; default any 2xx."
    )
    timeout: Duration = Field(default=30.0, gt=0, le=86400)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not (value.startswith(("http://", "https://")) or value.startswith("{{")):
            raise ValueError(f"url must start with http:// or https://, got {value!r}")
        return value


class ToolMessage(_Strict):
    """A `type: tool` event: send a message through a notification block."""

    block: str = Field(min_length=1, description="Name of a Prefect notification block.")
    message: str = Field(min_length=1)
    subject: str | None = None


class SendMessage(_Strict):
    block: str = Field(min_length=1, description="Name of a Prefect notification block.")
    message: str = Field(min_length=1)
    subject: str | None = None


MAX_MESSAGE_DELAY = 3600.0
MAX_RUN_EVENT_DELAY = 30 * 86400.0


class Action(_Strict):
    """A conditional action: when `on` holds after a run, send a message or run an event."""

    on: Trigger
    send_message: SendMessage | None = None
    run_event: Annotated[str, AfterValidator(_check_name)] | None = None
    delay: Duration | None = Field(
        default=None,
        le=MAX_RUN_EVENT_DELAY,
        description="Wait before acting: a message waits inside the run (at most 1h), a "
        "run_event is scheduled that much later (at most 30d).",
    )

    @model_validator(mode="after")
    def _one_action(self) -> Action:
        if (self.send_message is None) == (self.run_event is None):
            raise ValueError("an action needs exactly one of send_message or run_event")
        if self.send_message is not None and (self.delay or 0) > MAX_MESSAGE_DELAY:
            raise ValueError(
                f"delay {self.delay:g}s: a message waits inside the run, holding its worker "
                f"slot, for at most {MAX_MESSAGE_DELAY:g}s (1h); for longer, run_event a "
                "`type: tool` event, which is scheduled instead"
            )
        return self


class Event(_Strict):
    """A named unit of work. See SPEC §2 for every field."""

    name: Annotated[str, AfterValidator(_check_name)] = Field(
        description="Unique; 1-100 characters of a-z, 0-9 and '-'."
    )
    description: str = Field(default="", max_length=500)
    type: EventType
    script: str | None = Field(default=None, description="Inline source of a script event.")
    script_file: str | None = Field(
        default=None, description="Script path, relative to the definition file."
    )
    status: EventStatus = EventStatus.draft
    schedule: Schedule | None = None
    max_executions: StrictInt = Field(default=0, ge=0)
    run_location: RunLocation = RunLocation.local
    servers: list[Annotated[str, AfterValidator(_check_server_name)]] = Field(default_factory=list)
    image: str | None = Field(default=None, min_length=1, max_length=512)
    resources: Resources = Field(default_factory=Resources)
    timeout: Duration = Field(default=3600.0, gt=0, le=7 * 86400)
    retries: StrictInt = Field(default=0, ge=0, le=10)
    env: dict[str, Annotated[str, BeforeValidator(_env_value)]] = Field(default_factory=dict)
    variables: list[Annotated[str, AfterValidator(check_key)]] | None = Field(
        default=None,
        max_length=MAX_DECLARED_VARIABLES,
        description="The variables and secrets the event reads and writes: only these are "
        "read and shipped to where it runs, and writing any other fails the run. Absent: "
        "every variable its owner can see (as before this field existed).",
    )
    tags: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list)
    owner: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,100}$")] | None = None
    pool: Annotated[str, Field(pattern=POOL_PATTERN), AfterValidator(_not_prefects)] | None = Field(
        default=None,
        description="The Prefect work pool whose workers run it (`cronium worker --pool`); "
        "unset: CRONIUM_WORK_POOL.",
    )
    priority: Priority = Priority.normal
    overlap: Literal["skip", "queue", "allow"] = Field(
        default="skip",
        description="A scheduled run while the previous one still runs: skip it (Cronium's "
        "behaviour), queue it, or allow both at once.",
    )
    http: HttpRequest | None = None
    tool: ToolMessage | None = None
    actions: list[Action] = Field(default_factory=list)
    webhook: Webhook | None = Field(
        default=None, description="Start runs with `POST /hooks/{name}` (core/webhook.py)."
    )

    @field_validator("env")
    @classmethod
    def _env_keys(cls, env: dict[str, str]) -> dict[str, str]:
        for key in env:
            if not ENV_KEY_PATTERN.fullmatch(key):  # `$` alone lets a final newline through
                raise ValueError(f"environment variable name {key!r} is not a valid name")
            if key.upper().startswith("CRONIUM_"):
                raise ValueError(f"environment variable {key!r}: the CRONIUM_ prefix is reserved")
        return env

    @field_validator("servers", "variables")
    @classmethod
    def _listed_once(cls, names: list[str] | None, info: Any) -> list[str] | None:
        duplicates = sorted({n for n in names or () if names.count(n) > 1})  # type: ignore[union-attr]
        if duplicates:
            raise ValueError(f"{info.field_name}: listed twice: {', '.join(duplicates)}")
        return names

    @model_validator(mode="before")
    @classmethod
    def _read_script_file(cls, data: Any, info: Any) -> Any:
        """Inline `script_file` so the event carries its source wherever it is deployed.

        Only a definition file (the loader passes its folder) may name one: an event that
        arrives as flow parameters must never make the worker read its own files.
        """
        if not isinstance(data, dict) or data.get("script_file") is None:
            return data
        if data.get("script") is not None:
            raise ValueError("give either script or script_file, not both")
        base = (info.context or {}).get("base_dir")
        if base is None:
            raise ValueError(
                "script_file is read from definition files only; pass the source as script"
            )
        path = Path(base) / str(data["script_file"])
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ValueError(
                f"script_file {str(data['script_file'])!r}: no such file ({path})"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(
                f"script_file {str(data['script_file'])!r}: cannot read: {exc}"
            ) from None
        return {**data, "script": text}

    @model_validator(mode="after")
    def _consistent(self) -> Event:
        problems = []
        if self.type in SCRIPT_TYPES:
            if self.script is None:
                problems.append(f"a {self.type.value} event needs script or script_file")
            for field in ("http", "tool"):
                if getattr(self, field) is not None:
                    problems.append(f"{field} is only used by type: {field}")
        else:
            if self.script is not None:
                problems.append("script is only used by bash, python and node events")
            section = getattr(self, self.type.value)
            if section is None:
                problems.append(f"a {self.type.value} event needs a {self.type.value} section")
            other = "tool" if self.type == EventType.http else "http"
            if getattr(self, other) is not None:
                problems.append(f"{other} is only used by type: {other}")
        if self.run_location == RunLocation.remote:
            if not self.servers:
                problems.append("run_location: remote needs at least one server in servers")
            if self.image is not None:
                problems.append("image is only used with run_location: local")
        elif self.servers:
            problems.append("servers is only used with run_location: remote")
        waits = sum(a.delay or 0 for a in self.actions if a.send_message is not None)
        if waits > MAX_MESSAGE_DELAY:  # the messages' waits follow one another in the run
            problems.append(
                f"the send_message delays add up to {waits:g}s; a run waits for them one "
                f"after another, holding its worker slot, for at most {MAX_MESSAGE_DELAY:g}s"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def is_script(self) -> bool:
        return self.type in SCRIPT_TYPES

    def to_parameters(self) -> dict[str, Any]:
        """JSON form for a deployment's parameters; `Event.model_validate` reads it back.

        Without the status: the deployment's paused flag holds it (flows/status.py)."""
        return self.model_dump(mode="json", exclude={"script_file", "status"}, exclude_none=True)
