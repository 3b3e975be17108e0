"""Sandboxed Jinja2 templates: context, secret masking, errors with the template's line."""

from __future__ import annotations

import pytest

from cronium_prefect.errors import TemplateError
from cronium_prefect.event import Event
from cronium_prefect.names import Trigger
from cronium_prefect.record import RunRecord, RunStatus, ServerResult
from cronium_prefect.templates import render, template_context


def _context() -> dict:
    event = Event(name="backup", type="bash", script="true", tags=["ops"], owner="ana")
    record = RunRecord(
        event="backup",
        run_id="r-1",
        status=RunStatus.FAILURE,
        trigger=Trigger.SCHEDULE,
        exit_code=3,
        output={"rows": 7, "files": ["a", "b"]},
        condition=True,
        input=[1, 2],
        error="exit code 3",
        start_time="2026-11-27T10:00:00+00:00",
        duration_s=1.5,
        servers=[ServerResult("web-1", RunStatus.FAILURE, 3)],
    )
    return template_context(
        event, record, {"TOKEN": "s3cret-value", "REGION": "eu"}, {"TOKEN"}, "http://ui/r-1"
    )


def test_renders_the_spec_context():
    text = render(
        "{{ event.name }}/{{ event.owner }}/{{ event.tags[0] }}: {{ run.status }} "
        "exit {{ run.exit_code }} on {{ run.server }} in {{ run.duration }}s; "
        "rows={{ output.rows }} files={{ output.files | join(',') }} input={{ input }} "
        "cond={{ condition }} region={{ var.REGION }} url={{ run.url }}",
        _context(),
        "message",
    )
    assert text == (
        "backup/ana/ops: FAILURE exit 3 on web-1 in 1.5s; rows=7 files=a,b input=[1, 2] "
        "cond=True region=eu url=http://ui/r-1"
    )


def test_secret_variables_render_masked():
    assert render("token={{ var.TOKEN }}", _context(), "message") == "token=***"


def test_none_renders_empty():
    context = _context()
    context["run"]["error"] = None
    assert render("[{{ run.error }}]", context, "m") == "[]"


@pytest.mark.parametrize(
    "template, fragment",
    [
        ("line one\n{{ ''.__class__.__mro__ }}", "line 2: refused by the sandbox"),
        ("{{ output.__class__ }}", "line 1: refused by the sandbox"),
        ("{{ run.__init__.__globals__ }}", "line 1: refused by the sandbox"),
        ("a\nb\n{{ nothing.here }}", "line 3:"),
        ("{% for x in %}", "line 1:"),
        ("ok\n{{ output.rows / 0 }}", "line 2: division by zero"),
        ("{{ output.files.append('x') }}", "refused by the sandbox"),
        ("{{ 9 ** 999999999 }}", "line 1: refused by the sandbox: exponent"),
        ("x\n{{ 'a' * 10 ** 10 }}", "line 2: refused by the sandbox: repeating"),
        ("{{ [1] * 1000000 }}", "refused by the sandbox: repeating"),
        ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "recursion too deep"),
    ],
)
def test_bad_templates_fail_with_the_line(template, fragment):
    with pytest.raises(TemplateError) as caught:
        render(template, _context(), "actions[0].send_message.message")
    assert str(caught.value).startswith("actions[0].send_message.message: ")
    assert fragment in str(caught.value)


def test_ordinary_arithmetic_still_works():
    assert render("{{ 2 ** 10 }} {{ 'ab' * 3 }} {{ 3 * 4 }}", _context(), "m") == "1024 ababab 12"
