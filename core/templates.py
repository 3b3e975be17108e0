"""Jinja2 templates for messages, subjects and HTTP requests, rendered in a sandbox.

The context is SPEC §5's: `event`, `run`, `output`, `input`, `condition` and `var`.
Secret variables render as `***`: a message goes to people and chat rooms, not to the
secret's destination. A template that fails (syntax, an undefined name, an attribute the
sandbox refuses such as `''.__class__`) raises TemplateError naming the template and its
line; it never renders half a message.
"""

from __future__ import annotations

import sys
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2 import TemplateError as JinjaError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from .errors import TemplateError

__all__ = ["render", "template_context", "SECRET_MASK"]

SECRET_MASK = "***"

_environment = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    finalize=lambda value: "" if value is None else value,
)


def _template_line(traceback: Any) -> int | None:
    """The template line a runtime error happened on (Jinja maps its frames to it)."""
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


def render(template: str, context: dict[str, Any], where: str) -> str:
    """Render `template`; `where` names it in errors (e.g. "actions[0].send_message.message")."""
    try:
        return _environment.from_string(template).render(context)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{where}: line {exc.lineno}: {exc.message}") from None
    except SecurityError as exc:
        line = _template_line(sys.exc_info()[2])
        raise TemplateError(f"{where}: line {line}: refused by the sandbox: {exc}") from None
    except (JinjaError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
        line = _template_line(sys.exc_info()[2])
        message = getattr(exc, "message", None) or str(exc)
        raise TemplateError(f"{where}: line {line}: {message}") from None


def template_context(
    event: Any,
    record: Any,
    variables: dict[str, Any],
    secret_keys: set[str],
    run_url: str | None = None,
) -> dict[str, Any]:
    """SPEC §5's context for one finished run (`record` is a RunRecord)."""
    servers = ", ".join(s.name for s in record.servers) if record.servers else None
    return {
        "event": {
            "name": event.name,
            "type": event.type.value,
            "tags": list(event.tags),
            "owner": event.owner,
        },
        "run": {
            "id": record.run_id,
            "status": record.status.value,
            "exit_code": record.exit_code,
            "duration": record.duration_s,
            "start_time": record.start_time,
            "end_time": record.end_time,
            "error": record.error,
            "server": servers,
            "url": run_url,
        },
        "output": record.output,
        "input": record.input,
        "condition": record.condition,
        "var": {k: SECRET_MASK if k in secret_keys else v for k, v in variables.items()},
    }
