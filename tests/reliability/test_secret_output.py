"""A secret a script or an HTTP server returns is masked wherever the output goes: the
record and its artifacts, the persisted result, the `--json` line, a message's
`{{ output }}`, and the flow-run parameters of the event a run_event action starts. The
secret is tried plain and as it is commonly re-encoded (URL, base64, JSON-escaped), in
values, in keys, in a number, and in an HTTP answer's body and headers, also of a failed
request."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import urllib.parse
import uuid
from datetime import datetime, timezone
from pathlib import Path

from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

from cronium_prefect.blocks.variable_store import get_variable_store
from tests.cli import cronium
from tests.integration.test_apply import write_events
from tests.processes import wait_until
from tests.receivers import HttpReceiver

from .report import report
from .test_secrets_scan import _everything_since

TAG = uuid.uuid4().hex[:8]
SECRET = f'pa55/w0rd "{TAG}" &x'
NUMBER_SECRET = 7310429958  # a secret that is a number: masked as a JSON number too
ENCODED = {
    "plain": SECRET,
    "url": urllib.parse.quote(SECRET, safe=""),
    "form": urllib.parse.quote_plus(SECRET),
    "base64": base64.b64encode(SECRET.encode()).decode(),
    "base64url": base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
    "json-escaped": json.dumps(SECRET)[1:-1],
}
WORKER_ENV: dict[str, str] = {}


def _leak_body() -> bytes:
    return json.dumps({"echo": list(ENCODED.values()), SECRET: "as a key"}).encode()


def test_a_secret_in_output_is_masked_wherever_the_output_goes(worker, tmp_path):
    since = datetime.now(timezone.utc).isoformat()
    store = get_variable_store()
    store.set("REL_OUT_SECRET", SECRET, secret=True)
    store.set("REL_OUT_NUMBER", NUMBER_SECRET, secret=True)
    leaky = HttpReceiver(reply=_leak_body(), headers={"X-Leak": ENCODED["base64"]}).start()
    failing = HttpReceiver(status=500, reply=_leak_body(), headers={"X-Leak": SECRET}).start()
    hook = HttpReceiver().start()
    try:
        CustomWebhookNotificationBlock(
            name="rel-out-hook", url=hook.url("/hook"), json_data={"text": "{{body}}"}
        ).save("rel-out-hook", overwrite=True)
        script = (
            "import base64, json, urllib.parse, cronium\n"
            "s = cronium.getVariable('REL_OUT_SECRET')\n"
            "cronium.output({\n"
            "  'plain': f'before {s} after',\n"
            "  'url': urllib.parse.quote(s, safe=''),\n"
            "  'form': urllib.parse.quote_plus(s),\n"
            "  'base64': base64.b64encode(s.encode()).decode(),\n"
            "  'base64url': base64.urlsafe_b64encode(s.encode()).decode().rstrip('='),\n"
            "  'json': json.dumps({'k': s}),\n"
            "  s: 'the secret as a key',\n"
            "  'number': cronium.getVariable('REL_OUT_NUMBER'),\n"
            "  'rotated': s[::-1],\n"
            "})\n"
            # The run rotates the secret: its old value and its new one both stay masked.
            "cronium.setVariable('REL_OUT_SECRET', s[::-1])\n"
        )
        folder = write_events(
            tmp_path / "events",
            {
                "out.yaml": json.dumps(
                    {
                        "name": "rel-out-src",
                        "type": "python",
                        "script": script,
                        "actions": [
                            {"on": "success", "run_event": "rel-out-dst"},
                            {
                                "on": "success",
                                "send_message": {
                                    "block": "rel-out-hook",
                                    "message": "{{ output|tojson }}",
                                },
                            },
                        ],
                    }
                ),
                "dst.yaml": 'name: rel-out-dst\ntype: bash\nscript: cronium_output "$(cronium_input)"\n',
                "http.yaml": f"name: rel-out-http\ntype: http\nhttp: {{method: GET, url: '{leaky.url('/x')}'}}\n",
                "http500.yaml": f"name: rel-out-http-500\ntype: http\nhttp: {{method: GET, url: '{failing.url('/x')}'}}\n",
            },
        )
        assert cronium("apply", str(folder)).returncode == 0
        shown = {}
        # The HTTP servers answer with the secret as it is now: they go before the
        # script's runs, which rotate it.
        for name in ("rel-out-http", "rel-out-http-500", "rel-out-src"):
            done = cronium("run", name, "--json")
            shown[name] = done.stdout + done.stderr
            assert done.returncode == (1 if name.endswith("500") else 0), shown[name]
        src = json.loads(cronium("run", "rel-out-src", "--json").stdout)
        assert src["output"]["plain"] == "before *** after"
        assert src["output"]["number"] == "***" and "***" in src["output"]
        assert all(src["output"][k] == "***" for k in ("url", "form", "base64", "base64url"))
        assert json.loads(src["output"]["json"]) == {"k": "***"}
        assert src["output"]["rotated"] == "***"

        async def chained_done() -> bool:
            async with get_client() as client:
                targets = await client.read_flow_runs(
                    deployment_filter=DeploymentFilter(
                        name=DeploymentFilterName(any_=["rel-out-dst"])
                    )
                )
                return len(targets) >= 2 and all(r.state.is_final() for r in targets)

        wait_until(lambda: asyncio.run(chained_done()), 90, "the chained runs of rel-out-dst")
        wait_until(lambda: len(hook.requests) >= 2, 30, "both messages")
    finally:
        leaky.stop()
        failing.stop()
        hook.stop()
    sources = asyncio.run(_everything_since(since))
    results = Path(os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"])
    sources["results"] = "\n".join(
        p.read_text(errors="replace") for p in results.rglob("*") if p.is_file()
    )
    sources["cli"] = "\n".join(shown.values())
    sources["messages"] = "\n".join(r.body.decode(errors="replace") for r in hook.requests)
    found = {
        f"{form} in {source}": text.count(value)
        for form, value in {
            **ENCODED,
            "number": str(NUMBER_SECRET),
            "rotated": SECRET[::-1],
        }.items()
        for source, text in sources.items()
        if value in text
    }
    report("secret_output", {"sources": {s: len(t) for s, t in sources.items()}, "found": found})
    assert "***" in sources["messages"]
    assert found == {}
