"""Following a run (`cronium trigger --wait`, `cronium logs --follow`) ends as soon as
the run is final and its script lines are in: no idle polls after it."""

from __future__ import annotations

import asyncio

from prefect.client.orchestration import get_client

from cronium_prefect.flows.follow import FINISHED, follow_logs

from .helpers import event_from, logs_of, run_flow


class _CountingClient:
    """The real client, counting how often the follower asked for the run."""

    def __init__(self, client):
        self._client, self.run_reads = client, 0

    async def read_flow_run(self, *args, **kwargs):
        self.run_reads += 1
        return await self._client.read_flow_run(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_a_final_run_with_all_its_lines_in_is_followed_in_one_read(stack):
    event = event_from(
        "name: follow-quick\ntype: bash\nscript: 'for i in 1 2 3; do echo $i; done'\n"
    )
    _, record = run_flow(event)
    logs_of(record["run_id"])  # everything has arrived, the closing line too

    async def follow():
        async with get_client() as client:
            counting = _CountingClient(client)
            seen: list[str] = []
            await follow_logs(
                counting, record["run_id"], lambda log: seen.append(log.message), True
            )
            return counting.run_reads, seen

    reads, seen = asyncio.run(follow())
    assert reads == 1, reads
    assert [m for m in seen if m.startswith("[stdout]")] == [
        "[stdout] 1",
        "[stdout] 2",
        "[stdout] 3",
    ]
    assert any(m.startswith(FINISHED) for m in seen)


def test_follow_stops_on_the_records_count_without_prefects_closing_line(stack):
    """The record (written before the final state) counts the script's lines; once they
    are in, Prefect's closing line (shipped later, in a batch) is not waited for."""
    event = event_from("name: follow-count\ntype: bash\nscript: 'echo a; echo b'\n")
    _, record = run_flow(event)
    assert record["log_lines"] == 2 and record["attempts"] == 1
    every = logs_of(record["run_id"])
    closing = next(i for i, m in enumerate(every) if m.startswith(FINISHED))

    class WithoutClosingLine(_CountingClient):
        async def read_logs(self, *args, **kwargs):
            logs = await self._client.read_logs(*args, **kwargs)
            return [log for log in logs if not log.message.startswith(FINISHED)]

    async def follow():
        async with get_client() as client:
            counting = WithoutClosingLine(client)
            await follow_logs(counting, record["run_id"], lambda log: None, True)
            return counting.run_reads

    assert closing > 0
    assert asyncio.run(follow()) == 1
