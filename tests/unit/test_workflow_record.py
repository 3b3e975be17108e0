"""The workflow run's record: read back whole, and kept within its size cap by leaving the
largest step outputs out, saying so."""

import json

from cronium_prefect.flows.report import record_from_artifact
from cronium_prefect.names import RECORD_ARTIFACT_TYPE, Trigger
from cronium_prefect.record import RunStatus, StepRecord, StepStatus, WorkflowRecord


def _record() -> WorkflowRecord:
    record = WorkflowRecord(
        event="wf", run_id="r1", status=RunStatus.PARTIAL, trigger=Trigger.WEBHOOK, webhook="wf"
    )
    record.steps = [
        StepRecord("small", "e1", StepStatus.SUCCESS, ["a"], output={"n": 1}),
        StepRecord("big", "e2", StepStatus.SUCCESS, ["b", "c"], output=["x" * 4000] * 2, items=2),
        StepRecord("bad", "e3", StepStatus.FAILURE, ["d"], error="boom"),
    ]
    return record


def test_a_workflow_record_reads_back_as_one_from_its_artifact():
    record = _record()
    back = record_from_artifact(RECORD_ARTIFACT_TYPE, json.dumps(record.to_json()))
    assert isinstance(back, WorkflowRecord)
    assert back.to_json() == record.to_json()
    assert back.step("big").items == 2 and back.step("bad").status == StepStatus.FAILURE


def test_fit_leaves_out_the_largest_outputs_first_and_says_so():
    record = _record()
    record.fit(2000)
    assert len(json.dumps(record.to_json())) <= 2000
    assert record.step("small").output == {"n": 1}  # small enough to stay
    assert record.step("big").output.startswith("(left out: 8")
    untouched = _record()
    untouched.fit(1_000_000)
    assert untouched.to_json() == _record().to_json()
