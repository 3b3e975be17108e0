"""Jinja2 templates for messages, subjects and HTTP requests, rendered in a sandbox.

The context is SPEC §5's: `event`, `run`, `output`, `input`, `condition` and `var`.
Secret variables render as `***`: a message goes to people and chat rooms, not to the
secret's destination. A template that fails (syntax, an undefined name, an attribute the
sandbox refuses such as `''.__class__`) raises TemplateError naming the template and its
line; it never renders half a message.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2 import TemplateError as JinjaError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from .errors import TemplateError
from .names import MASK

__all__ = ["render", "evaluate", "is_template", "referenced", "template_context"]


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

    def getattr(self, obj: Any, attribute: str) -> Any:
        """A key of JSON data before a method of dict: `output.items` is the output's
        `items`, not `dict.items` (Jinja looks up the attribute first)."""
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


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


# A text that is one expression and nothing else: `{{ steps.fetch.output.items }}`.
_ONE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expression>(?:(?!\}\}|\{\{|\{%).)*)\}\}\s*$", re.S)


def is_template(text: object) -> bool:
    return isinstance(text, str) and ("{{" in text or "{%" in text)


def evaluate(template: str, context: dict[str, Any], where: str) -> Any:
    """A template as a value: one `{{ expression }}` alone gives its JSON value (a list
    stays a list, a number a number); any other text renders to text."""
    match = _ONE_EXPRESSION.match(template)
    if match is None:
        return render(template, context, where)
    try:
        expression = _environment.compile_expression(match["expression"], undefined_to_none=False)
        value = expression(**context)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{where}: {exc.message}") from None
    except SecurityError as exc:
        raise TemplateError(f"{where}: refused by the sandbox: {exc}") from None
    except RecursionError:
        raise TemplateError(f"{where}: recursion too deep") from None
    except (JinjaError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
        raise TemplateError(f"{where}: {getattr(exc, 'message', None) or exc}") from None
    return _json_value(value, where)


def _json_value(value: Any, where: str) -> Any:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_json_value(item, where) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_value(item, where) for key, item in value.items()}
    if isinstance(value, StrictUndefined):
        raise TemplateError(f"{where}: {value._undefined_message}")
    raise TemplateError(f"{where}: evaluates to a {type(value).__name__}, not a JSON value")


def referenced(template: str, root: str, where: str) -> set[str]:
    """The names a template reads under `root` (`steps.fetch.output` reads `fetch` of
    `steps`); raises TemplateError for a template that does not parse."""
    try:
        tree = _environment.parse(template)
        _environment.from_string(template)  # compiling finds unknown filters and tests
    except TemplateSyntaxError as exc:  # TemplateAssertionError included
        raise TemplateError(f"{where}: line {exc.lineno}: {exc.message}") from None
    found = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        base = node.node
        if isinstance(base, nodes.Name) and base.name == root:
            if isinstance(node, nodes.Getattr):
                found.add(node.attr)
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                found.add(node.arg.value)
    return found


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
            "type": getattr(event, "kind", None) or event.type.value,  # or "workflow"
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
