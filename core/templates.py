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
from .names import MASK

__all__ = ["render", "template_context"]


_MAX_POWER = 64
_MAX_REPEAT = 100_000  # characters or items `*` may build


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's sandbox leaves `**` and `*` alone: `{{ 9 ** 10**9 }}` or `{{ 'a' * 10**10 }}`
    would hold the worker's event loop (and its memory) for as long as they take."""

    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _is_number(right) and abs(right) > _MAX_POWER:
            raise SecurityError(f"exponent {right} is larger than {_MAX_POWER}")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    if len(seq) * times > _MAX_REPEAT:
                        raise SecurityError(f"repeating builds more than {_MAX_REPEAT} items")
        return super().call_binop(context, operator, left, right)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_environment = _BoundedSandbox(
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
    except RecursionError:
        raise TemplateError(f"{where}: recursion too deep (a macro calling itself?)") from None
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
        "var": {k: MASK if k in secret_keys else v for k, v in variables.items()},
    }
