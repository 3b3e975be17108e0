"""The Python API inside a user's own Prefect flow."""

from __future__ import annotations

import asyncio

import pytest
from prefect import flow

from cronium_prefect import docker_script, run_event, ssh_script
from cronium_prefect.errors import RunFailed
from cronium_prefect.names import Trigger
from cronium_prefect.record import RunStatus
from tests.sshd import USER

from .helpers import event_from


def test_a_user_flow_chains_a_docker_task_an_event_and_an_ssh_task(stack, ssh_server):
    ssh_server("ssh-main")
    event = event_from(
        "name: api-double\ntype: python\nscript: |\n  import cronium\n"
        "  cronium.output([x * 2 for x in cronium.input()])\n"
    )

    @flow
    async def mine() -> tuple:
        rows = await docker_script("import cronium; cronium.output([1, 2, 3])", "python")
        record = await run_event(event, input=rows)
        where = await ssh_script('cronium_output "$(whoami)"', servers=["ssh-main"])
        return rows, record, where

    rows, record, where = asyncio.run(mine())
    assert rows == [1, 2, 3]
    assert record.status is RunStatus.SUCCESS and record.output == [2, 4, 6]
    assert record.trigger is Trigger.API and record.event == "api-double"
    assert where == USER


def test_a_failing_script_raises_run_failed_with_the_record(stack):
    @flow
    async def mine():
        return await docker_script("echo broken >&2; exit 6")

    with pytest.raises(RunFailed) as caught:
        asyncio.run(mine())
    assert "exit code 6" in str(caught.value)
    assert caught.value.record.status is RunStatus.FAILURE and caught.value.record.exit_code == 6
