"""A workflow step's inputs: one per run, rendered from the workflow's input and the
outputs of the steps that ended, in the template sandbox (the same limits as messages)."""

from __future__ import annotations

from typing import Any

import anyio

from cronium_prefect.caps import check_input
from cronium_prefect.errors import CroniumError
from cronium_prefect.record import WorkflowRecord
from cronium_prefect.settings import get_settings
from cronium_prefect.templates import is_template
from cronium_prefect.workflow import MAX_ITEMS, Step, Workflow

from .runtime import current_runtime

__all__ = ["step_inputs"]


async def step_inputs(
    workflow: Workflow, record: WorkflowRecord, input: Any, step: Step
) -> list[Any]:
    """One input per run of `step`: its `input` rendered (for each for_each item, with
    `item` and `index`), or the default one; each within CRONIUM_INPUT_LIMIT."""
    context = _context(workflow, record, input)
    if step.for_each is None:
        items: list[Any] = [None]
    else:
        items = await _walk(step.for_each, context, f"steps.{step.name}.for_each")
        if not isinstance(items, list):
            raise CroniumError(
                f"steps.{step.name}.for_each: gave a {type(items).__name__}, not a list"
            )
        if len(items) > MAX_ITEMS:
            raise CroniumError(
                f"steps.{step.name}.for_each: {len(items)} items, over the limit of {MAX_ITEMS}"
            )
    inputs = []
    for index, item in enumerate(items):
        if step.input is None:
            value = _default(record, input, step, item)
        else:
            scope = context if step.for_each is None else {**context, "item": item, "index": index}
            value = await _walk(step.input, scope, f"steps.{step.name}.input")
        check_input(value, get_settings().input_limit, f"the input of step {step.name}")
        inputs.append(value)
    return inputs


def _context(workflow: Workflow, record: WorkflowRecord, input: Any) -> dict[str, Any]:
    steps = {
        s.name: {"output": s.output, "status": s.status.value, "condition": s.condition}
        for s in record.steps
        if s.status.ended
    }
    return {
        "input": input,
        "steps": steps,
        "workflow": {"name": workflow.name, "run_id": record.run_id},
    }


async def _walk(value: Any, context: dict[str, Any], where: str) -> Any:
    if is_template(value):
        sandbox = current_runtime().templates
        return await anyio.to_thread.run_sync(sandbox.evaluate, value, context, where)
    if isinstance(value, dict):
        return {k: await _walk(v, context, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [await _walk(v, context, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _default(record: WorkflowRecord, input: Any, step: Step, item: Any) -> Any:
    """No `input:`: the item; else the upstream output (by step for several); else the
    workflow's input."""
    if step.for_each is not None:
        return item
    if not step.needs:
        return input
    outputs = {n.step: record.step(n.step).output for n in step.needs}
    return next(iter(outputs.values())) if len(outputs) == 1 else outputs
