"""Many at once: 20 runs writing the same variable leave one of their values, whole."""

from __future__ import annotations

import asyncio

from cronium_prefect.variables import get_variable_store

from .report import report


def test_20_runs_writing_one_variable_leave_one_whole_value(stack):
    """In-process runs, all at once: the write that lands last wins, whole."""
    from cronium_prefect import parse_text
    from cronium_prefect.flows import cronium_event

    (event,) = parse_text(
        "name: rel-same\ntype: python\nscript: |\n  import cronium\n"
        "  cronium.setVariable('REL_SAME', {'writer': cronium.input(), 'pad': 'x' * 5000})\n"
    )

    async def all_at_once():
        return await asyncio.gather(
            *(cronium_event(event=event, input=i, return_state=True) for i in range(20))
        )

    states = asyncio.run(all_at_once())
    value = get_variable_store().get("REL_SAME").value
    report(
        "concurrency_same_key",
        {
            "writers": 20,
            "completed": sum(s.name == "Completed" for s in states),
            "final_writer": value.get("writer"),
        },
    )
    assert all(s.name == "Completed" for s in states), [s.message for s in states]
    assert value["writer"] in range(20) and value["pad"] == "x" * 5000
