"""Templates cannot take the worker, or Prefect's server, down: every amplification family
(padding filters and methods, %-formatting and format(), replace chains, joins, nested
loops, chained powers, lipsum) fails its action with a TemplateError within its limits,
the run's status stays SUCCESS, nothing rendered reaches the receiver or the API, and the
process running the flow keeps a flat memory."""

from __future__ import annotations

import json
import resource
import time

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock

from cronium_prefect.errors import TemplateError
from cronium_prefect.executors.template_sandbox import TemplateSandbox
from tests.integration.helpers import event_from, run_flow
from tests.integration.test_messages import _artifact
from tests.receivers import HttpReceiver

from .report import report

# Each one, rendered without limits, builds gigabytes or spins for minutes.
BOMBS = {
    "center filter": "{{ 'x'|center(2000000000) }}",
    "center method": "{{ 'x'.center(2000000000) }}",
    "ljust method": "{{ 'x'.ljust(1500000000) }}",
    "indent filter": "{{ 'a\nb'|indent(2000000000) }}",
    "percent format": "{{ '%2000000000s' % 'x' }}",
    "format filter": "{{ '%2000000000s'|format('x') }}",
    "str.format": "{{ '{:>2000000000}'.format('x') }}",
    "replace chain": "{% set s = 'xxxxxxxxxx' %}"
    + "{% set s = s|replace('x', 'xxxxxxxxxx') %}" * 12
    + "{{ s|length }}",
    "join of ranges": "{{ range(100000)|join(',' ~ range(100000)|join(',')) }}",
    "nested loops": "{% for a in range(100000) %}{% for b in range(100000) %}"
    "{% endfor %}{% endfor %}",
    "chained powers": "{{ ((((9 ** 64) ** 64) ** 64) ** 64) ** 64 }}",
    "lipsum": "{{ lipsum(2000000000) }}",
    "concatenation loop": "{% set ns = namespace(s='x' * 1000) %}"
    "{% for i in range(100000) %}{% set ns.s = ns.s ~ ns.s[:1000] %}{% endfor %}"
    "{{ ns.s|length }}",
}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture
def receiver():
    server = HttpReceiver().start()
    yield server
    server.stop()


def test_every_amplification_family_fails_its_action_within_limits(
    prefect_api, docker_client, receiver
):
    CustomWebhookNotificationBlock(
        name="bomb-hook", url=receiver.url("/hook"), json_data={"text": "{{body}}"}
    ).save("bomb-hook", overwrite=True)
    actions = [
        {"on": "success", "send_message": {"block": "bomb-hook", "message": template}}
        for template in BOMBS.values()
    ]
    actions.append(
        {"on": "success", "send_message": {"block": "bomb-hook", "message": "fine {{ output }}"}}
    )
    event = event_from(
        json.dumps(
            {"name": "tpl-bombs", "type": "bash", "script": "cronium_output 7", "actions": actions}
        )
    )
    peak_before = _rss_mb()
    began = time.monotonic()
    state, record = run_flow(event)
    took = time.monotonic() - began
    peak_after = _rss_mb()

    assert record["status"] == "SUCCESS" and state.is_completed(), record
    # Only the harmless message was sent.
    assert [r.json()["text"] for r in receiver.requests] == ["fine 7"]
    deliveries = _artifact("cronium-msg-tpl-bombs")
    outcomes = {}
    for name, delivery in zip(BOMBS, deliveries[:-1], strict=True):
        outcomes[name] = delivery["error"]
        assert delivery["status"] == "failed", (name, delivery)
        error = delivery["error"] or ""
        assert error.startswith("actions[") and "send_message.message" in error, (name, error)
        assert any(
            word in error
            for word in ("MiB", "of CPU", "characters, over the limit", "took too long", "refused")
        ), (name, error)
    assert deliveries[-1]["status"] == "sent"
    report(
        "template_bombs",
        {
            "families": len(BOMBS),
            "seconds": round(took, 1),
            "peak_rss_mb_before": round(peak_before),
            "peak_rss_mb_after": round(peak_after),
            "errors": outcomes,
        },
    )
    # The process running the flow never held what the templates tried to build.
    assert peak_after - peak_before < 100, (peak_before, peak_after)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 'x' * 9000 }}{{ 'y' * 9000 }}", "characters, over the limit of 10000"),
        ("{% for i in range(100000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", "CPU"),
        ("{{ 'x'|center(400000000) }}", "MiB"),
    ],
)
def test_each_limit_names_itself_and_the_sandbox_recovers(template, message):
    """Each limit, hit on purpose; the next template renders at once."""
    sandbox = TemplateSandbox(memory_mb=64, cpu_seconds=0.5, max_chars=10_000, processes=1)
    try:
        with pytest.raises(TemplateError, match=message) as caught:
            sandbox.render(template, {}, "actions[0].send_message.message")
        assert str(caught.value).startswith("actions[0].send_message.message: ")
        # The same sandbox renders the next template at once.
        assert sandbox.render("{{ n + 1 }}", {"n": 41}, "next") == "42"
    finally:
        sandbox.close()


def test_a_long_non_ascii_result_within_the_limit_is_returned_whole():
    sandbox = TemplateSandbox(max_chars=300_000, processes=1)
    try:
        text = sandbox.render("{{ s ~ s }}", {"s": "漢字\U0001f600" * 40_000}, "body")
        assert text == "漢字\U0001f600" * 80_000
    finally:
        sandbox.close()


def test_a_closed_sandbox_leaves_no_renderer_running():
    sandbox = TemplateSandbox(processes=2)
    sandbox.render("{{ 1 }}", {}, "a")
    (child,) = sandbox._idle
    sandbox.close()
    assert child.process.poll() is not None
