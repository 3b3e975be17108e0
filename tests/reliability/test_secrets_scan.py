"""Seed secrets everywhere they can live — a secret variable, an SSH password and key,
SMTP credentials, a webhook token — use each in runs (Docker, SSH, email, webhook, an
HTTP event, a failing delivery), then read back everything the API holds about those
runs: logs, artifacts, flow and task runs (parameters, state messages), events, block
documents, and the result files. No secret may appear anywhere."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from pydantic import SecretStr

from cronium_prefect.blocks import CroniumEmail
from cronium_prefect.blocks.variable_store import get_variable_store
from tests.integration.helpers import event_from, logs_of, run_flow
from tests.receivers import HttpReceiver, SmtpReceiver
from tests.sshd import PASSWORD

from .report import report

TAG = uuid.uuid4().hex[:10]
SECRETS = {
    "variable": f"var-secret-{TAG}",
    "smtp_password": f"smtp-pass-{TAG}",
    "webhook_token": f"hook-token-{TAG}",
    "ssh_password": PASSWORD,
}


async def _everything_since(since: str) -> dict[str, str]:
    """The API's own view of everything that happened since `since`, as text per source."""
    texts: dict[str, list[str]] = {
        k: [] for k in ("logs", "artifacts", "flow_runs", "task_runs", "events", "blocks")
    }
    async with get_client() as client:

        async def pages(path: str, body: dict, into: str) -> None:
            offset = 0
            while True:
                page = (
                    await client.request(
                        "POST", path, json={**body, "offset": offset, "limit": 200}
                    )
                ).json()
                texts[into] += [json.dumps(item) for item in page]
                if len(page) < 200:
                    return
                offset += 200

        await pages("/logs/filter", {"logs": {"timestamp": {"after_": since}}}, "logs")
        await pages("/artifacts/filter", {}, "artifacts")
        await pages(
            "/flow_runs/filter",
            {"flow_runs": {"expected_start_time": {"after_": since}}},
            "flow_runs",
        )
        await pages(
            "/task_runs/filter",
            {"task_runs": {"expected_start_time": {"after_": since}}},
            "task_runs",
        )
        await pages("/block_documents/filter", {"include_secrets": False}, "blocks")
        page = (
            await client.request(
                "POST",
                "/events/filter",
                json={"filter": {"occurred": {"since": since}}, "limit": 50},
            )
        ).json()
        while True:
            texts["events"] += [json.dumps(e) for e in page["events"]]
            if not page.get("next_page"):
                break
            page = (await client.request("GET", page["next_page"])).json()
    return {source: "\n".join(items) for source, items in texts.items()}


def test_no_secret_reaches_logs_artifacts_runs_events_blocks_or_results(
    stack, ssh_server, tmp_path
):
    since = datetime.now(timezone.utc).isoformat()
    store = get_variable_store()
    store.set("REL_SECRET", SECRETS["variable"], secret=True)
    key_server = ssh_server("rel-sec-key")
    ssh_server("rel-sec-pass", password=True)
    secrets = {**SECRETS, "ssh_key": key_server.private_key.get_secret_value().splitlines()[1]}
    smtp = SmtpReceiver(login=("cronium", SECRETS["smtp_password"])).start()
    hook = HttpReceiver().start()
    failing = HttpReceiver(status=500).start()
    try:
        CroniumEmail(
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            security="none",
            username="cronium",
            password=SecretStr(SECRETS["smtp_password"]),
            from_address="c@example.test",
            to_addresses=["ops@example.test"],
        ).save("rel-sec-mail", overwrite=True)
        for name, receiver in (("rel-sec-hook", hook), ("rel-sec-hook-500", failing)):
            CustomWebhookNotificationBlock(
                name=name,
                url=receiver.url("/hook/{{token}}"),
                json_data={"text": "{{body}}"},
                secrets={"token": SECRETS["webhook_token"]},
            ).save(name, overwrite=True)
        message = "value {{ var.REL_SECRET }} from {{ event.name }}"
        records = [
            run_flow(
                event_from(f"""\
                name: rel-sec-docker
                type: bash
                script: |
                  echo "the token is $(cronium_get_variable REL_SECRET)"
                  echo "$(cronium_get_variable REL_SECRET)" >&2
                  cronium_set_condition true
                actions:
                  - on: condition
                    send_message: {{block: rel-sec-mail, subject: "{message}", message: "{message}"}}
                  - on: condition
                    send_message: {{block: rel-sec-hook, message: "{message}"}}
                  - on: condition
                    send_message: {{block: rel-sec-hook-500, message: "{message}"}}
                """)
            )[1],
            run_flow(
                event_from("""\
                name: rel-sec-ssh
                type: bash
                run_location: remote
                servers: [rel-sec-key, rel-sec-pass]
                script: echo "remote sees $(cronium_get_variable REL_SECRET)"; echo "$REL_ENV"
                env: {REL_ENV: "{{ var.REL_SECRET }}"}
                """)
            )[1],
            run_flow(
                event_from(f"""\
                name: rel-sec-http
                type: http
                http:
                  method: POST
                  url: "{hook.url("/api")}"
                  headers: {{Authorization: "Bearer {{{{ var.REL_SECRET }}}}"}}
                  body: {{token: "{{{{ var.REL_SECRET }}}}"}}
                """)
            )[1],
        ]
        for record in records:
            logs_of(record["run_id"])  # every line has arrived
    finally:
        smtp.stop()
        hook.stop()
        failing.stop()
    delivered = {
        "email": len(smtp.messages),
        "webhook": sum(r.path.startswith("/hook/") for r in hook.requests),
        "http_event": sum(r.path == "/api" for r in hook.requests),
        "failing_webhook_attempts": len(failing.requests),
    }
    sources = asyncio.run(_everything_since(since))
    results = Path(os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"])
    sources["results"] = (
        "\n".join(p.read_text(errors="replace") for p in results.rglob("*") if p.is_file())
        if results.exists()
        else ""
    )
    found = {
        f"{secret} in {source}": text.count(value)
        for secret, value in secrets.items()
        for source, text in sources.items()
        if text.count(value)
    }
    report(
        "secrets_scan",
        {
            "secrets": sorted(secrets),
            "sources": {source: len(text) for source, text in sources.items()},
            "delivered": delivered,
            "occurrences": found,
        },
    )
    assert [r["status"] for r in records] == ["SUCCESS", "SUCCESS", "SUCCESS"], [
        r["error"] for r in records
    ]
    assert delivered["email"] == 1 and delivered["webhook"] == 1 and delivered["http_event"] == 1
    assert delivered["failing_webhook_attempts"] >= 1
    assert found == {}
