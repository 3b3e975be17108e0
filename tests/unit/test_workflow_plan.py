"""The workflow plan (core/workflow_plan.py), pure: which pending steps start, which are
skipped and which never start, from hand-built records; and the run's final status."""

from __future__ import annotations

import pytest

from cronium_prefect.names import Trigger
from cronium_prefect.record import RunStatus, StepRecord, StepStatus, WorkflowRecord
from cronium_prefect.workflow import Workflow
from cronium_prefect.workflow_plan import Plan, final_status

S = StepStatus


def _workflow(*steps: dict, on_failure: str = "fail_fast") -> Workflow:
    return Workflow.model_validate(
        {
            "kind": "workflow",
            "name": "wf",
            "on_failure": on_failure,
            "steps": [{"event": "e", **step} for step in steps],
        }
    )


def _step(name: str, *needs: str | dict, join: str = "all") -> dict:
    return {"name": name, "needs": list(needs), "join": join}


def _record(workflow: Workflow, **statuses: StepStatus) -> WorkflowRecord:
    """Every step PENDING but those given (`cleanup_step=...` for `cleanup-step`)."""
    given = {name.replace("_", "-"): status for name, status in statuses.items()}
    unknown = set(given) - {s.name for s in workflow.steps}
    assert not unknown, unknown
    return WorkflowRecord(
        event=workflow.name,
        run_id="run-1",
        status=RunStatus.RUNNING,
        trigger=Trigger.MANUAL,
        steps=[
            StepRecord(name=s.name, event=workflow.event_of(s), status=given.get(s.name, S.PENDING))
            for s in workflow.steps
        ],
    )


def _plan(workflow: Workflow, **statuses: StepStatus) -> Plan:
    return Plan(workflow, _record(workflow, **statuses))


def _decided(plan: Plan) -> dict[str, StepStatus]:
    return {d.step.name: d.status for d in plan.decide()}


def _apply(plan: Plan) -> dict[str, StepStatus]:
    """Decide, and write the decisions into the record, as the flow does."""
    decided = _decided(plan)
    for name, status in decided.items():
        plan.record.step(name).status = status
    return decided


def _end(plan: Plan, name: str, status: StepStatus, condition: bool = False) -> None:
    step = plan.record.step(name)
    assert step.status == S.RUNNING, f"{name} was not started: {step.status}"
    step.status, step.condition = status, condition
    if status == S.FAILURE:
        plan.failed = True  # what the flow does on the first failure


def _run(workflow: Workflow, ends: dict[str, StepStatus]) -> tuple[list[list[str]], Plan]:
    """Drive a whole run: each wave starts what the plan says, then ends those steps as
    `ends` says (SUCCESS if unlisted), until every step has ended. The started waves."""
    plan = _plan(workflow)
    waves = []
    for _ in range(len(workflow.steps) + 1):
        decided = _apply(plan)
        started = [n for n, status in decided.items() if status == S.RUNNING]
        if started:
            waves.append(started)
        for name in started:
            _end(plan, name, ends.get(name, S.SUCCESS))
        if plan.done:
            return waves, plan
    raise AssertionError(f"the run never ended: {plan.record.steps}")


def _statuses(plan: Plan) -> dict[str, StepStatus]:
    return {s.name: s.status for s in plan.record.steps}


DIAMOND = _workflow(
    _step("a"),
    _step("b", "a"),
    _step("c", "a"),
    _step("d", "b", "c"),
)


# -- order ----------------------------------------------------------------------------


def test_a_diamond_runs_root_then_both_branches_then_the_join():
    plan = _plan(DIAMOND)
    assert _apply(plan) == {"a": S.RUNNING}
    assert _decided(plan) == {}, "nothing more while a runs"
    _end(plan, "a", S.SUCCESS)
    assert _apply(plan) == {"b": S.RUNNING, "c": S.RUNNING}
    _end(plan, "b", S.SUCCESS)
    assert _decided(plan) == {}, "d waits for c too"
    _end(plan, "c", S.SUCCESS)
    assert _apply(plan) == {"d": S.RUNNING}
    _end(plan, "d", S.SUCCESS)
    assert plan.done and _decided(plan) == {}
    assert final_status(DIAMOND, plan.record.steps) == RunStatus.SUCCESS


def test_the_whole_diamond_in_waves():
    waves, plan = _run(DIAMOND, {})
    assert waves == [["a"], ["b", "c"], ["d"]]
    assert set(_statuses(plan).values()) == {S.SUCCESS}


def test_roots_all_start_at_once_and_not_done_until_every_step_ended():
    workflow = _workflow(_step("a"), _step("b"), _step("c", "a"))
    plan = _plan(workflow)
    assert _apply(plan) == {"a": S.RUNNING, "b": S.RUNNING}
    assert not plan.done
    _end(plan, "a", S.SUCCESS)
    _end(plan, "b", S.SUCCESS)
    assert not plan.done, "c is still pending"
    assert _apply(plan) == {"c": S.RUNNING}


# -- join -------------------------------------------------------------------------------


def test_join_all_waits_for_every_need_and_is_skipped_by_one_that_cannot_hold():
    workflow = _workflow(_step("a"), _step("b"), _step("j", "a", "b"), on_failure="continue")
    assert _decided(_plan(workflow, a=S.SUCCESS, b=S.RUNNING)) == {}
    assert _decided(_plan(workflow, a=S.SUCCESS, b=S.SUCCESS)) == {"j": S.RUNNING}
    plan = _plan(workflow, a=S.FAILURE, b=S.RUNNING)
    (decision,) = plan.decide()
    assert decision.status == S.SKIPPED, "one need can never hold: no need to wait for b"
    assert decision.reason == "needs a on success; it ended FAILURE"


def test_join_any_starts_on_the_first_need_that_holds():
    workflow = _workflow(_step("a"), _step("b"), _step("j", "a", "b", join="any"))
    assert _decided(_plan(workflow, a=S.RUNNING, b=S.RUNNING)) == {}
    assert _decided(_plan(workflow, a=S.RUNNING, b=S.SUCCESS)) == {"j": S.RUNNING}
    assert _decided(_plan(workflow, a=S.SUCCESS, b=S.RUNNING)) == {"j": S.RUNNING}


def test_join_any_is_skipped_only_once_no_need_can_hold():
    workflow = _workflow(
        _step("a"), _step("b"), _step("j", "a", "b", join="any"), on_failure="continue"
    )
    assert _decided(_plan(workflow, a=S.FAILURE, b=S.RUNNING)) == {}, "b may still succeed"
    plan = _plan(workflow, a=S.FAILURE, b=S.SKIPPED)
    (decision,) = plan.decide()
    assert decision.status == S.SKIPPED
    assert decision.reason == "needs any of a on success, b on success"


def test_join_any_with_mixed_conditions():
    workflow = _workflow(
        _step("a"),
        _step("b"),
        _step("j", {"step": "a", "on": "failure"}, "b", join="any"),
        on_failure="continue",
    )
    assert _decided(_plan(workflow, a=S.FAILURE, b=S.RUNNING)) == {"j": S.RUNNING}
    assert _decided(_plan(workflow, a=S.SUCCESS, b=S.RUNNING)) == {}
    assert _decided(_plan(workflow, a=S.SUCCESS, b=S.FAILURE)) == {"j": S.SKIPPED}


# -- conditions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on", "upstream", "condition", "expected"),
    [
        ("success", S.SUCCESS, False, S.RUNNING),
        ("success", S.FAILURE, False, S.SKIPPED),
        ("success", S.CANCELLED, False, S.SKIPPED),
        ("success", S.SKIPPED, False, S.SKIPPED),
        ("failure", S.FAILURE, False, S.RUNNING),
        ("failure", S.SUCCESS, False, S.SKIPPED),
        ("failure", S.CANCELLED, False, S.SKIPPED),
        ("failure", S.SKIPPED, False, S.SKIPPED),
        ("always", S.SUCCESS, False, S.RUNNING),
        ("always", S.FAILURE, False, S.RUNNING),
        ("always", S.CANCELLED, False, S.RUNNING),
        ("always", S.SKIPPED, False, S.RUNNING),
        ("always", S.NOT_STARTED, False, S.RUNNING),
        ("condition", S.SUCCESS, True, S.RUNNING),
        ("condition", S.SUCCESS, False, S.SKIPPED),
        ("condition", S.FAILURE, True, S.SKIPPED),
        ("condition", S.SKIPPED, False, S.SKIPPED),
    ],
)
def test_each_condition_holds_only_when_its_upstream_ended_as_it_asks(
    on, upstream, condition, expected
):
    workflow = _workflow(_step("a"), _step("b", {"step": "a", "on": on}), on_failure="continue")
    plan = _plan(workflow, a=upstream)
    plan.record.step("a").condition = condition
    assert _decided(plan) == {"b": expected}


@pytest.mark.parametrize("on", ["success", "failure", "always", "condition"])
@pytest.mark.parametrize("upstream", [S.PENDING, S.RUNNING])
def test_no_condition_is_decided_before_its_upstream_ends(on, upstream):
    workflow = _workflow(_step("a"), _step("b", {"step": "a", "on": on}))
    plan = _plan(workflow, a=upstream)
    plan.record.step("a").condition = True
    decided = _decided(plan)
    assert "b" not in decided


# -- skipped propagation ------------------------------------------------------------------


def test_a_skipped_step_skips_its_dependents_in_turn():
    workflow = _workflow(
        _step("a"),
        _step("on-fail", {"step": "a", "on": "failure"}),
        _step("after", "on-fail"),
        _step("last", "after"),
        _step("cleanup", {"step": "last", "on": "always"}),
    )
    plan = _plan(workflow)
    _apply(plan)
    _end(plan, "a", S.SUCCESS)
    assert _apply(plan) == {"on-fail": S.SKIPPED}
    assert _apply(plan) == {"after": S.SKIPPED}
    assert _apply(plan) == {"last": S.SKIPPED}
    assert _apply(plan) == {"cleanup": S.RUNNING}, "always holds for a skipped step"
    _end(plan, "cleanup", S.SUCCESS)
    assert plan.done
    assert final_status(workflow, plan.record.steps) == RunStatus.SUCCESS


def test_skipping_under_continue_leaves_the_other_branch_running():
    workflow = _workflow(
        _step("a"),
        _step("b", "a"),
        _step("c"),
        _step("d", "c"),
        on_failure="continue",
    )
    waves, plan = _run(workflow, {"a": S.FAILURE})
    assert waves == [["a", "c"], ["d"]]
    assert _statuses(plan) == {"a": S.FAILURE, "b": S.SKIPPED, "c": S.SUCCESS, "d": S.SUCCESS}
    assert plan.record.step("b").status == S.SKIPPED
    assert final_status(workflow, plan.record.steps) == RunStatus.PARTIAL


# -- fail_fast ----------------------------------------------------------------------------


FAIL_FAST = _workflow(
    _step("a"),
    _step("b"),
    _step("after-a", "a"),
    _step("after-b", "b"),
    _step("on-a-failed", {"step": "a", "on": "failure"}),
    _step("cleanup", {"step": "after-a", "on": "always"}, {"step": "after-b", "on": "always"}),
)


def test_after_a_failure_only_holding_failure_and_always_needs_start():
    plan = _plan(FAIL_FAST, a=S.FAILURE, b=S.SUCCESS)
    plan.failed = True
    decisions = {d.step.name: d for d in plan.decide()}
    assert {n: d.status for n, d in decisions.items()} == {
        "after-a": S.NOT_STARTED,  # its need can never hold: never started, not skipped
        "after-b": S.NOT_STARTED,  # its need holds, but it is no handler
        "on-a-failed": S.RUNNING,
    }
    assert decisions["after-b"].reason == "a step failed (fail_fast)"


def test_without_fail_fast_the_same_record_goes_on():
    workflow = FAIL_FAST.model_copy(update={"on_failure": "continue"})
    plan = _plan(workflow, a=S.FAILURE, b=S.SUCCESS)
    plan.failed = True
    assert _decided(plan) == {
        "after-a": S.SKIPPED,
        "after-b": S.RUNNING,
        "on-a-failed": S.RUNNING,
    }


def test_cleanup_on_not_started_steps_starts_once_they_are_decided():
    plan = _plan(FAIL_FAST)
    assert _apply(plan) == {"a": S.RUNNING, "b": S.RUNNING}
    _end(plan, "a", S.FAILURE)
    assert _apply(plan) == {"after-a": S.NOT_STARTED, "on-a-failed": S.RUNNING}
    assert "cleanup" not in _decided(plan), "after-b is not decided yet"
    plan.record.step("b").status = S.CANCELLED  # fail_fast stops the running steps
    assert _apply(plan) == {"after-b": S.NOT_STARTED}
    assert _apply(plan) == {"cleanup": S.RUNNING}
    _end(plan, "cleanup", S.SUCCESS)
    _end(plan, "on-a-failed", S.SUCCESS)
    assert plan.done and _decided(plan) == {}
    assert final_status(FAIL_FAST, plan.record.steps) == RunStatus.FAILURE


def test_fail_fast_lets_a_handler_start_only_if_its_handler_need_holds():
    workflow = _workflow(
        _step("a"),
        _step("b"),
        _step("h", {"step": "a", "on": "failure"}, "b", join="any"),
    )
    plan = _plan(workflow, a=S.SUCCESS, b=S.FAILURE)
    plan.failed = True
    # a succeeded, so its failure need cannot hold; b failed, so its success need cannot
    # either: dead, and under fail_fast a dead step is never started (not skipped).
    assert _decided(plan) == {"h": S.NOT_STARTED}
    plan = _plan(workflow, a=S.FAILURE, b=S.SUCCESS)
    plan.failed = True
    assert _decided(plan) == {"h": S.RUNNING}


def test_fail_fast_a_condition_or_success_need_alone_does_not_start():
    workflow = _workflow(
        _step("a"),
        _step("b"),
        _step("on-cond", {"step": "a", "on": "condition"}),
        _step("on-ok", "a"),
    )
    plan = _plan(workflow, a=S.SUCCESS, b=S.FAILURE)
    plan.record.step("a").condition = True
    assert _decided(plan) == {"on-cond": S.RUNNING, "on-ok": S.RUNNING}
    plan.failed = True
    assert _decided(plan) == {"on-cond": S.NOT_STARTED, "on-ok": S.NOT_STARTED}


def test_fail_fast_waits_for_a_step_that_may_still_end():
    workflow = _workflow(_step("a"), _step("b"), _step("c", "b"))
    plan = _plan(workflow, a=S.FAILURE, b=S.RUNNING)
    plan.failed = True
    assert _decided(plan) == {}, "c is neither ready nor dead while b runs"


def test_a_fail_fast_run_end_to_end():
    waves, plan = _run(FAIL_FAST, {"a": S.FAILURE})
    # a and b start together; a fails: everything but the handlers is never started.
    assert waves[0] == ["a", "b"]
    assert _statuses(plan) == {
        "a": S.FAILURE,
        "b": S.SUCCESS,
        "after-a": S.NOT_STARTED,
        "after-b": S.NOT_STARTED,
        "on-a-failed": S.SUCCESS,
        "cleanup": S.SUCCESS,
    }
    assert final_status(FAIL_FAST, plan.record.steps) == RunStatus.FAILURE


# -- halted -------------------------------------------------------------------------------


def test_halted_means_every_pending_step_is_not_started_cleanup_included():
    plan = _plan(FAIL_FAST, a=S.CANCELLED, b=S.SUCCESS, after_b=S.RUNNING)
    plan.halted = True
    decisions = {d.step.name: d for d in plan.decide()}
    assert {n: d.status for n, d in decisions.items()} == {
        "after-a": S.NOT_STARTED,
        "on-a-failed": S.NOT_STARTED,
        "cleanup": S.NOT_STARTED,
    }, "a running step is not decided; every pending one never starts"
    assert {d.reason for d in decisions.values()} == {"the workflow stopped"}


def test_halted_before_anything_started():
    plan = _plan(DIAMOND)
    plan.halted = True
    assert _decided(plan) == {n: S.NOT_STARTED for n in "abcd"}


def test_halted_wins_over_ready_handlers():
    workflow = _workflow(_step("a"), _step("h", {"step": "a", "on": "always"}))
    plan = _plan(workflow, a=S.FAILURE)
    assert _decided(plan) == {"h": S.RUNNING}
    plan.halted = True
    assert _decided(plan) == {"h": S.NOT_STARTED}


# -- final_status ---------------------------------------------------------------------------


def _final(on_failure: str, *statuses: StepStatus) -> RunStatus:
    workflow = _workflow(*(_step(f"s{i}") for i in range(len(statuses))), on_failure=on_failure)
    record = _record(workflow, **{f"s{i}": status for i, status in enumerate(statuses)})
    return final_status(workflow, record.steps)


@pytest.mark.parametrize("on_failure", ["fail_fast", "continue"])
def test_success_when_nothing_that_should_have_run_went_wrong(on_failure):
    assert _final(on_failure, S.SUCCESS, S.SUCCESS) == RunStatus.SUCCESS
    assert _final(on_failure, S.SUCCESS, S.SKIPPED) == RunStatus.SUCCESS, "skipped is fine"


@pytest.mark.parametrize("bad", [S.FAILURE, S.CANCELLED, S.NOT_STARTED])
def test_fail_fast_is_failure_on_any_bad_step_even_beside_successes(bad):
    assert _final("fail_fast", S.SUCCESS, S.SUCCESS, bad) == RunStatus.FAILURE
    assert _final("fail_fast", bad) == RunStatus.FAILURE


@pytest.mark.parametrize("bad", [S.FAILURE, S.CANCELLED, S.NOT_STARTED])
def test_continue_is_partial_when_some_step_succeeded(bad):
    assert _final("continue", S.SUCCESS, bad) == RunStatus.PARTIAL
    assert _final("continue", S.SKIPPED, bad, S.SUCCESS) == RunStatus.PARTIAL


@pytest.mark.parametrize("bad", [S.FAILURE, S.CANCELLED, S.NOT_STARTED])
def test_continue_is_failure_when_nothing_succeeded(bad):
    assert _final("continue", bad) == RunStatus.FAILURE
    assert _final("continue", bad, S.SKIPPED, S.FAILURE) == RunStatus.FAILURE


def test_a_handled_failure_is_still_a_failure():
    workflow = _workflow(_step("a"), _step("h", {"step": "a", "on": "failure"}))
    _, plan = _run(workflow, {"a": S.FAILURE})
    assert _statuses(plan) == {"a": S.FAILURE, "h": S.SUCCESS}
    assert final_status(workflow, plan.record.steps) == RunStatus.FAILURE
