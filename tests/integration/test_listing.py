"""`cronium events` a page at a time: --limit, --all, filters asked of the API, the total on
stderr, and pages that stream (several pages read the same rows as one)."""

from __future__ import annotations

import asyncio
import json

from prefect.client.orchestration import get_client

from cronium_prefect.flows import listing
from cronium_prefect.flows.listing import EventFilter, count_events, event_pages
from tests.cli import cronium

STATUSES = ["active", "paused", "draft", "archived"]
TYPES = ["bash", "python", "node"]


def _seed(tmp_path) -> dict[str, dict]:
    """13 events (3 archived): statuses, types, owners and tags mixed; what each should list as."""
    folder = tmp_path / "ls"
    folder.mkdir()
    made = {}
    for i in range(13):
        event = {
            "name": f"lsx-{i:02d}",
            "type": TYPES[i % 3],
            "script": "true",
            "status": STATUSES[i % 4],
            "owner": f"team-{i % 2}",
            "tags": [f"group-{i % 3}"],
        }
        made[event["name"]] = event
        (folder / f"{event['name']}.yaml").write_text(json.dumps(event))
    applied = cronium("apply", str(folder))
    assert applied.returncode == 0, applied.stderr
    return made


def _names(*args: str) -> tuple[list[str], str]:
    listed = cronium("events", "--name", "lsx-", "--json", *args)
    assert listed.returncode == 0, listed.stderr
    return [row["name"] for row in json.loads(listed.stdout)], listed.stderr.strip()


def test_limit_all_filters_and_the_total(prefect_api, tmp_path):
    made = _seed(tmp_path)
    shown = sorted(n for n, e in made.items() if e["status"] != "archived")
    assert len(shown) == 10

    assert _names("--all") == (shown, "10 events")
    assert _names() == (shown, "10 events")  # under the default limit
    assert _names("--limit", "4") == (shown[:4], "4 of 10 events (--limit N or --all for more)")
    assert _names("--limit", "10") == (shown, "10 events")

    def expected(**match) -> list[str]:
        return [n for n in shown if all(made[n][k] == v for k, v in match.items())]

    assert _names("--type", "python", "--all")[0] == expected(type="python")
    assert _names("--owner", "team-1", "--all")[0] == expected(owner="team-1")
    assert _names("--status", "draft")[0] == expected(status="draft")
    archived = [n for n, e in made.items() if e["status"] == "archived"]
    assert _names("--status", "archived") == (archived, f"{len(archived)} events")
    grouped = [n for n in shown if made[n]["tags"] == ["group-2"]]
    assert _names("--tag", "group-2", "--owner", "team-0")[0] == [
        n for n in grouped if made[n]["owner"] == "team-0"
    ]
    assert _names("--type", "node", "--limit", "1") == (
        expected(type="node")[:1],
        f"1 of {len(expected(type='node'))} events (--limit N or --all for more)",
    )
    assert _names("--name", "LSX-1") == ([n for n in shown if n.startswith("lsx-1")], "2 events")
    assert _names("--name", "no-such") == ([], "0 events")

    # The table: a header, one line per event, nothing else on stdout.
    table = cronium("events", "--name", "lsx-", "--limit", "3")
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["EVENT", "TYPE", "STATUS"]
    assert [line.split()[0] for line in lines[1:]] == shown[:3]
    assert table.stderr.strip() == "3 of 10 events (--limit N or --all for more)"

    for bad, named in (
        (["--status", "gone"], "--status 'gone'"),
        (["--type", "ruby"], "--type 'ruby'"),
        (["--limit", "0"], "--limit"),
    ):
        refused = cronium("events", *bad)
        assert refused.returncode == 2 and named in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr


def test_pages_of_two_list_what_one_page_lists(prefect_api, tmp_path, monkeypatch):
    """Several pages (archived events dropped from some, a limit ending mid-page) give the
    rows one page gives, in order, with next and last runs read per page."""
    _seed(tmp_path)
    which = EventFilter(name="lsx-")

    async def read(limit=None) -> tuple[list[list[str]], int]:
        async with get_client() as client:
            pages = [[r["name"] for r in p] async for p in event_pages(client, which, limit)]
            return pages, await count_events(client, which)

    (whole,), total = asyncio.run(read())
    assert total == len(whole) == 10
    monkeypatch.setattr(listing, "_PAGE", 2)
    pages, _ = asyncio.run(read())
    assert [n for page in pages for n in page] == whole
    assert len(pages) >= 5 and all(1 <= len(page) <= 2 for page in pages)
    limited, _ = asyncio.run(read(limit=5))
    assert [n for page in limited for n in page] == whole[:5]


def test_every_filter_is_a_query_the_api_answers():
    """Status, name and the facet tags become one `deployments` filter."""
    body = EventFilter("paused", "nightly", "reports", "bash", "db1", "ops").deployments()
    assert body["paused"] == {"eq_": True}
    assert body["name"] == {"like_": "nightly"}
    assert sorted(body["tags"]["all_"]) == sorted(
        [
            "cronium-type:bash",
            "cronium-server:db1",
            "cronium-owner:ops",
            "reports",
            "cronium-lifecycle:live",
        ]
    )
    assert EventFilter().deployments() == {}
    assert EventFilter(status="active").deployments() == {"paused": {"eq_": False}}
