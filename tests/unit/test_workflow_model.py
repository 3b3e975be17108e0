"""Workflow definitions (`kind: workflow`) are checked once, at the edge: every problem is
an InvalidEvent whose Problem names the file, the line of the offending field, the
workflow (kind "workflow") and the field's path, e.g. `steps[2].needs[0]`."""

from __future__ import annotations

import textwrap

import pytest
from pydantic import ValidationError

from cronium_prefect import InvalidEvent
from cronium_prefect.loader import (
    Definitions,
    check_references,
    load_definitions,
    parse_documents,
    parse_text,
    validate_event,
)
from cronium_prefect.workflow import When, Workflow, inline_event_name

# The events the diamond's steps name, in a file of their own.
EVENTS = """\
name: fetch-ev
type: bash
script: echo fetch
---
name: right-ev
type: bash
script: echo right
---
name: merge-ev
type: bash
script: echo merge
---
name: alert-ev
type: bash
script: echo alert
"""

# fetch -> (left, right) -> merge, with a failure branch after merge.
DIAMOND = """\
kind: workflow
name: wf
description: a diamond
status: active
on_failure: continue
owner: ana
steps:
  - name: fetch
    event: fetch-ev
  - name: left
    needs: [fetch]
    for_each: "{{ steps.fetch.output.items }}"
    max_parallel: 2
    input: {item: "{{ item }}", run: "{{ workflow.run_id }}"}
    run:
      type: bash
      script: echo left
      tags: [mine]
  - name: right
    needs: [{step: fetch, on: condition}]
    event: right-ev
  - name: merge
    needs: [left, {step: right, on: always}]
    join: any
    input: "{{ steps.left.output }} {{ steps['fetch'].output }}"
    event: merge-ev
  - name: on-error
    needs: [{step: merge, on: failure}]
    event: alert-ev
"""


def _write(tmp_path, text: str, name: str = "f.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _line_of(document: str, needle: str, after: str | None = None) -> int:
    """The 1-based line of the first line holding `needle` (after the one holding `after`)."""
    lines = document.splitlines()
    start = 0
    if after is not None:
        start = next(i for i, line in enumerate(lines) if after in line) + 1
    return next(i + 1 for i, line in enumerate(lines) if i >= start and needle in line)


def _workflow(steps: str, head: str = "") -> str:
    return f"kind: workflow\nname: wf\n{head}steps:\n{textwrap.dedent(steps)}"


def _refused(tmp_path, document: str) -> tuple[InvalidEvent, str]:
    path = _write(tmp_path, document)
    with pytest.raises(InvalidEvent) as caught:
        load_definitions([path])
    return caught.value, str(path)


# -- the valid diamond -------------------------------------------------------------------


def test_a_valid_diamond_loads_with_its_needs_joins_and_inline_event(tmp_path):
    _write(tmp_path, DIAMOND, "wf.yaml")
    _write(tmp_path, EVENTS, "events.yaml")
    found = load_definitions([tmp_path])
    assert [e.name for e in found.events] == ["fetch-ev", "right-ev", "merge-ev", "alert-ev"]
    (workflow,) = found.workflows
    assert workflow.name == "wf" and workflow.on_failure == "continue"
    assert [s.name for s in workflow.steps] == ["fetch", "left", "right", "merge", "on-error"]
    merge = workflow.step("merge")
    assert merge.join == "any"
    assert [(n.step, n.on) for n in merge.needs] == [("left", When.success), ("right", When.always)]
    assert [(n.step, n.on) for n in workflow.step("right").needs] == [("fetch", When.condition)]
    assert workflow.step("on-error").needs[0].on == When.failure
    left = workflow.step("left")
    assert left.for_each == "{{ steps.fetch.output.items }}" and left.max_parallel == 2
    assert left.event is None and left.run is not None
    assert workflow.event_of(left) == "wf--left"
    assert workflow.event_of(workflow.step("fetch")) == "fetch-ev"
    assert workflow.sinks() == ["on-error"]
    # The inline event is an event of its own among the definitions.
    assert [e.name for e in found.all_events][-1] == "wf--left"
    assert check_references(found) == []


def test_the_defaults_of_a_minimal_workflow():
    (workflow,) = parse_documents(_workflow("  - name: a\n    event: e\n"))
    assert workflow.status.value == "draft" and workflow.overlap == "skip"
    assert workflow.on_failure == "fail_fast" and workflow.max_parallel == 8
    assert workflow.timeout == 86400
    step = workflow.steps[0]
    assert step.needs == [] and step.join == "all" and step.input is None
    assert step.for_each is None and step.max_parallel is None


def test_a_need_given_as_a_name_is_a_success_need():
    (workflow,) = parse_documents(
        _workflow("  - name: a\n    event: e\n  - name: b\n    event: e\n    needs: [a]\n")
    )
    (need,) = workflow.step("b").needs
    assert need.step == "a" and need.on == When.success


def test_upstream_reads_through_several_levels_are_allowed():
    document = _workflow(
        """\
        - name: a
          event: e
        - name: b
          event: e
          needs: [a]
        - name: c
          event: e
          needs: [b]
          input: {x: ["{{ steps.a.output }}", "{% for i in steps.b.output %}{{ i }}{% endfor %}"]}
        """
    )
    (workflow,) = parse_documents(document)
    assert workflow.step("c").input["x"][0] == "{{ steps.a.output }}"


# -- every problem family: file, line, workflow, field -----------------------------------

# (case id, document, field path, (needle, after) locating the line, message fragment)
INVALID = [
    (
        "unknown top-level key",
        _workflow("  - name: a\n    event: e\n", head="on_falure: continue\n"),
        "on_falure",
        ("on_falure", None),
        "unknown field (did you mean 'on_failure'?)",
    ),
    (
        "unknown key stepz",
        "kind: workflow\nname: wf\nstepz: []\nsteps:\n  - name: a\n    event: e\n",
        "stepz",
        ("stepz", None),
        "did you mean 'steps'?",
    ),
    (
        "unknown step key",
        _workflow("  - name: a\n    event: e\n  - name: b\n    event: e\n    neds: [a]\n"),
        "steps[1].neds",
        ("neds", None),
        "unknown field",
    ),
    (
        "unknown need key",
        _workflow(
            "  - name: a\n    event: e\n  - name: b\n    event: e\n    needs:\n"
            "      - step: a\n        onn: failure\n"
        ),
        "steps[1].needs[0].onn",
        ("onn", None),
        "unknown field",
    ),
    (
        "unknown inline event key",
        _workflow("  - name: a\n    run:\n      type: bash\n      script: x\n      scirpt: y\n"),
        "steps[0].run.scirpt",
        ("scirpt", None),
        "unknown field",
    ),
    (
        "duplicate step names",
        _workflow("  - name: a\n    event: e\n  - name: a\n    event: f\n"),
        "steps[1].name",
        ("name: a", "event: e"),
        "step 'a' is defined twice (steps[0])",
    ),
    (
        "need naming no step",
        _workflow(
            "  - name: a\n    event: e\n  - name: b\n    event: e\n"
            "  - name: c\n    event: e\n    needs: [ghost, a]\n"
        ),
        "steps[2].needs[0]",
        ("needs: [ghost, a]", None),
        "no step named 'ghost'",
    ),
    (
        "second need naming no step",
        _workflow(
            "  - name: a\n    event: e\n  - name: b\n    event: e\n    needs:\n"
            "      - a\n      - {step: ghost, on: always}\n"
        ),
        "steps[1].needs[1]",
        ("ghost", None),
        "no step named 'ghost'",
    ),
    (
        "a step needing itself",
        _workflow("  - name: a\n    event: e\n  - name: b\n    event: e\n    needs: [a, b]\n"),
        "steps[1].needs[1]",
        ("needs: [a, b]", None),
        "step 'b' needs itself",
    ),
    (
        "two-step cycle",
        _workflow(
            "  - name: a\n    event: e\n    needs: [b]\n  - name: b\n    event: e\n    needs: [a]\n"
        ),
        "steps[1].needs",
        ("needs: [a]", None),
        "needs form a cycle: a -> b -> a",
    ),
    (
        "three-step cycle behind a root",
        _workflow(
            "  - name: s\n    event: e\n"
            "  - name: a\n    event: e\n    needs: [s, c]\n"
            "  - name: b\n    event: e\n    needs: [a]\n"
            "  - name: c\n    event: e\n    needs: [b]\n"
        ),
        "steps[2].needs",
        ("needs: [a]", None),
        "needs form a cycle: a -> c -> b -> a",
    ),
    (
        "template reading a sibling",
        _workflow(
            "  - name: a\n    event: e\n"
            "  - name: b\n    event: e\n    needs: [a]\n"
            "  - name: c\n    event: e\n    needs: [a]\n    input: '{{ steps.b.output }}'\n"
        ),
        "steps[2].input",
        ("input:", None),
        "reads steps.b, which is not upstream of 'c'",
    ),
    (
        "template reading a downstream step",
        _workflow(
            "  - name: a\n    event: e\n    input: {x: [1, '{{ steps.b.output }}']}\n"
            "  - name: b\n    event: e\n    needs: [a]\n"
        ),
        "steps[0].input.x[1]",
        ("input:", None),
        "reads steps.b, which is not upstream of 'a'",
    ),
    (
        "template reading no step",
        _workflow(
            "  - name: a\n    event: e\n  - name: b\n    event: e\n    needs: [a]\n"
            "    input:\n      deep:\n        x: \"{{ steps['nope'].output }}\"\n"
        ),
        "steps[1].input.deep.x",
        ("x: ", None),
        "reads steps.nope, which is no step",
    ),
    (
        "for_each template reading no step",
        _workflow("  - name: a\n    event: e\n    for_each: '{{ steps.gone.output }}'\n"),
        "steps[0].for_each",
        ("for_each", None),
        "reads steps.gone, which is no step",
    ),
    (
        "template that does not parse",
        _workflow("  - name: a\n    event: e\n    input: '{{ input.x '\n"),
        "steps[0].input",
        ("input:", None),
        "line 1: unexpected end of template",
    ),
    (
        "template with an unclosed block",
        _workflow("  - name: a\n    event: e\n    input: {t: '{% for x in input %}'}\n"),
        "steps[0].input.t",
        ("input:", None),
        "'endfor'",
    ),
    (
        "for_each a plain string",
        _workflow("  - name: a\n    event: e\n    for_each: items\n"),
        "steps[0].for_each",
        ("for_each", None),
        "give a list or a template giving one",
    ),
    (
        "for_each a number",
        _workflow("  - name: a\n    event: e\n    for_each: 5\n"),
        "steps[0].for_each",
        ("for_each", None),
        "valid list",
    ),
    (
        "max_parallel without for_each",
        _workflow("  - name: a\n    event: e\n    max_parallel: 3\n"),
        "steps[0]",
        ("- name: a", None),
        "max_parallel goes with for_each",
    ),
    (
        "max_parallel over the limit",
        _workflow("  - name: a\n    event: e\n    for_each: [1]\n    max_parallel: 101\n"),
        "steps[0].max_parallel",
        ("max_parallel", None),
        "less than or equal to 100",
    ),
    (
        "both event and run",
        _workflow("  - name: a\n    event: e\n    run: {type: bash, script: x}\n"),
        "steps[0]",
        ("- name: a", None),
        "exactly one of event (a deployed event) or run",
    ),
    (
        "neither event nor run",
        _workflow("  - name: a\n    event: e\n  - name: b\n    needs: [a]\n"),
        "steps[1]",
        ("- name: b", None),
        "exactly one of event (a deployed event) or run",
    ),
    (
        "inline event's own invalid field",
        _workflow(
            "  - name: a\n    event: e\n  - name: b\n    run:\n      type: bash\n"
            "      script: x\n      retries: 99\n"
        ),
        "steps[1].run.retries",
        ("retries", None),
        "less than or equal to 10 (got 99)",
    ),
    (
        "inline event without its type",
        _workflow("  - name: a\n    run:\n      script: x\n"),
        "steps[0].run.type",
        ("run:", None),
        "Field required",
    ),
    (
        "inline event of an unknown type",
        _workflow("  - name: a\n    run:\n      type: ruby\n      script: x\n"),
        "steps[0].run.type",
        ("type: ruby", None),
        "'ruby'",
    ),
    (
        "a step name that is no name",
        _workflow("  - name: Bad_Name\n    event: e\n"),
        "steps[0].name",
        ("Bad_Name", None),
        "'Bad_Name'",
    ),
    (
        "an event name that is no name",
        _workflow("  - name: a\n    event: 'has space'\n"),
        "steps[0].event",
        ("has space", None),
        "'has space'",
    ),
    (
        "a need listed twice",
        _workflow(
            "  - name: a\n    event: e\n  - name: b\n    event: e\n    needs: [a, {step: a, on: always}]\n"
        ),
        "steps[1]",
        ("- name: b", None),
        "needs: listed twice: a",
    ),
    (
        "a need on a condition that is none",
        _workflow(
            "  - name: a\n    event: e\n  - name: b\n    event: e\n    needs: [{step: a, on: sometimes}]\n"
        ),
        "steps[1].needs[0].on",
        ("sometimes", None),
        "'sometimes'",
    ),
    (
        "a need that is a number",
        _workflow("  - name: a\n    event: e\n    needs: [5]\n"),
        "steps[0].needs[0]",
        ("needs", None),
        "valid dictionary",
    ),
    (
        "a join that is none",
        _workflow("  - name: a\n    event: e\n    join: some\n"),
        "steps[0].join",
        ("join", None),
        "'all' or 'any'",
    ),
    (
        "no steps",
        "kind: workflow\nname: wf\nsteps: []\n",
        "steps",
        ("steps", None),
        "at least 1 item",
    ),
    (
        "bad on_failure",
        _workflow("  - name: a\n    event: e\n", head="on_failure: stop\n"),
        "on_failure",
        ("on_failure", None),
        "'stop'",
    ),
    (
        "timeout over a week",
        _workflow("  - name: a\n    event: e\n", head="timeout: 8d\n"),
        "timeout",
        ("timeout", None),
        "604800",
    ),
    (
        "an action starting the workflow itself",
        _workflow("  - name: a\n    event: e\n", head="actions: [{on: failure, run_event: wf}]\n"),
        "actions[0].run_event",
        ("actions", None),
        "a workflow's action cannot start the workflow",
    ),
]


@pytest.mark.parametrize(
    ("document", "field", "where", "fragment"),
    [c[1:] for c in INVALID],
    ids=[c[0] for c in INVALID],
)
def test_each_problem_names_file_line_workflow_and_field(
    tmp_path, document, field, where, fragment
):
    refused, source = _refused(tmp_path, document)
    line = _line_of(document, *where)
    matching = [p for p in refused.problems if p.field == field and fragment in p.message]
    assert matching, f"no problem on {field!r} with {fragment!r} in:\n{refused}"
    problem = matching[0]
    assert problem.source == source
    assert problem.line == line, (problem, line)
    assert problem.event == "wf" and problem.kind == "workflow", problem
    # ... and the text a user sees says all of it on one line.
    assert f"{source}:{line}: workflow 'wf': {field}: " in str(refused), str(refused)


def test_a_duplicate_yaml_key_is_refused_on_its_line(tmp_path):
    document = _workflow("  - name: a\n    event: e\n    event: f\n")
    refused, source = _refused(tmp_path, document)
    (problem,) = refused.problems
    assert problem.source == source and problem.field == "steps[0]"
    assert problem.line == _line_of(document, "event: f")
    assert "duplicate key 'event' (first at line 5)" in problem.message


def test_a_duplicate_yaml_key_names_the_workflow(tmp_path):
    refused, _ = _refused(tmp_path, _workflow("  - name: a\n    event: e\n    event: f\n"))
    (problem,) = refused.problems
    assert problem.event == "wf" and problem.kind == "workflow"


def test_an_unknown_step_key_suggests_the_close_one(tmp_path):
    document = _workflow("  - name: a\n    event: e\n  - name: b\n    event: e\n    neds: [a]\n")
    refused, _ = _refused(tmp_path, document)
    assert "did you mean 'needs'?" in str(refused)


def test_every_graph_problem_is_reported_at_once(tmp_path):
    document = _workflow(
        "  - name: a\n    event: e\n    needs: [a]\n"
        "  - name: b\n    event: e\n    needs: [ghost]\n"
        "  - name: b\n    event: e\n"
    )
    refused, _ = _refused(tmp_path, document)
    assert {p.field for p in refused.problems} == {
        "steps[0].needs[0]",
        "steps[1].needs[0]",
        "steps[2].name",
    }


def test_several_documents_are_each_named(tmp_path):
    document = (
        _workflow("  - name: a\n    event: e\n    needs: [a]\n")
        + "---\n"
        + "kind: workflow\nname: other\nsteps:\n  - name: x\n    event: e\n    for_each: text\n"
    )
    refused, _ = _refused(tmp_path, document)
    named = {(p.event, p.field, p.line) for p in refused.problems}
    assert named == {
        ("wf", "steps[0].needs[0]", _line_of(document, "needs: [a]")),
        ("other", "steps[0].for_each", _line_of(document, "for_each: text")),
    }


def test_the_model_itself_refuses_a_bad_graph_outside_the_loader():
    data = {
        "kind": "workflow",
        "name": "wf",
        "steps": [
            {"name": "a", "event": "e", "needs": ["b"]},
            {"name": "b", "event": "e", "needs": ["a"]},
        ],
    }
    with pytest.raises(ValidationError, match=r"steps\[1\]\.needs: needs form a cycle"):
        Workflow.model_validate(data)


def test_a_workflow_is_not_an_event_where_events_are_asked_for(tmp_path):
    document = _workflow("  - name: a\n    event: e\n")
    with pytest.raises(InvalidEvent, match="is a workflow"):
        parse_text(document, "f.yaml")
    with pytest.raises(InvalidEvent, match="this is a workflow, not an event"):
        validate_event({"kind": "workflow", "name": "wf", "steps": [{"name": "a", "event": "e"}]})


def test_json_workflows_are_read_too():
    text = (
        '{"kind": "workflow", "name": "wf", "steps": [{"name": "a", "event": "e"}, '
        '{"name": "b", "event": "e", "needs": ["a", "c"]}]}'
    )
    with pytest.raises(InvalidEvent) as caught:
        parse_documents(text, "f.json", fmt="json")
    (problem,) = caught.value.problems
    assert problem.field == "steps[1].needs[1]" and problem.kind == "workflow"
    assert problem.source == "f.json" and "no step named 'c'" in problem.message


# -- inline events (`run:`) --------------------------------------------------------------


def test_inline_events_are_named_after_workflow_and_step_and_active():
    document = _workflow(
        """\
        - name: a
          run: {type: bash, script: echo a, tags: [t]}
        - name: b
          needs: [a]
          run: {type: python, script: print(1), overlap: queue}
        """,
        head="owner: ana\n",
    )
    (workflow,) = parse_documents(document)
    a, b = workflow.inline_events()
    assert (
        (a.name, b.name)
        == ("wf--a", "wf--b")
        == (
            inline_event_name("wf", "a"),
            inline_event_name("wf", "b"),
        )
    )
    assert a.status.value == "active" and b.status.value == "active"
    assert a.overlap == "allow", "an inline event allows overlap by default"
    assert b.overlap == "queue", "an inline event's own overlap is kept"
    assert a.tags == ["t", "workflow:wf"] and b.tags == ["workflow:wf"]
    assert a.owner == "ana" and b.owner == "ana"
    assert a.script == "echo a" and b.type.value == "python"


@pytest.mark.parametrize("field", ["name", "status"])
def test_an_inline_event_may_not_set_its_name_or_status(tmp_path, field):
    value = "x" if field == "name" else "draft"
    document = _workflow(
        f"  - name: a\n    event: e\n  - name: b\n    run:\n      type: bash\n"
        f"      script: x\n      {field}: {value}\n"
    )
    refused, source = _refused(tmp_path, document)
    (problem,) = refused.problems
    assert problem.field == f"steps[1].run.{field}" and problem.line == 10
    assert "set by the workflow" in problem.message and "'wf--b'" in problem.message
    assert problem.source == source and problem.event == "wf" and problem.kind == "workflow"


def test_a_refused_inline_name_is_reported_on_its_field_and_line(tmp_path):
    document = _workflow(
        "  - name: a\n    event: e\n  - name: b\n    run:\n      type: bash\n"
        "      script: x\n      name: x\n"
    )
    refused, _ = _refused(tmp_path, document)
    (problem,) = refused.problems
    assert problem.field == "steps[1].run.name"
    assert problem.line == _line_of(document, "name: x")


def test_an_unhashable_inline_tag_is_a_problem_not_a_crash():
    with pytest.raises(InvalidEvent) as caught:
        parse_documents(_workflow("  - name: a\n    run: {type: bash, script: x, tags: [[1]]}\n"))
    assert caught.value.problems[0].field.startswith("steps[0].run.tags")


def test_inline_tags_that_are_not_a_list_are_refused():
    with pytest.raises(InvalidEvent) as caught:
        parse_documents(_workflow("  - name: a\n    run: {type: bash, script: x, tags: 5}\n"))
    assert caught.value.problems[0].field == "steps[0].run.tags"


# -- one namespace: events, workflows, inline events -------------------------------------


def test_an_event_and_a_workflow_may_not_share_a_name(tmp_path):
    _write(tmp_path, "name: wf\ntype: bash\nscript: x\n", "a-event.yaml")
    workflow = _write(tmp_path, _workflow("  - name: a\n    event: e\n"), "b-workflow.yaml")
    with pytest.raises(InvalidEvent) as caught:
        load_definitions([tmp_path])
    (problem,) = caught.value.problems
    assert problem.source == str(workflow) and problem.event == "wf"
    assert problem.kind == "workflow" and problem.field == "name"
    assert "name defined twice (also in" in problem.message and "a-event.yaml" in problem.message


def test_an_event_and_a_workflow_in_one_file_may_not_share_a_name(tmp_path):
    document = _workflow("  - name: a\n    event: e\n") + "---\nname: wf\ntype: bash\nscript: x\n"
    refused, source = _refused(tmp_path, document)
    (problem,) = refused.problems
    assert problem.source == source and problem.line == 7 and problem.event == "wf"
    assert "name defined twice in this file (first at line 1)" in problem.message


def test_an_event_may_not_take_the_name_of_an_inline_event(tmp_path):
    _write(tmp_path, _workflow("  - name: a\n    run: {type: bash, script: x}\n"), "a-wf.yaml")
    event = _write(tmp_path, "name: wf--a\ntype: bash\nscript: x\n", "b-event.yaml")
    with pytest.raises(InvalidEvent) as caught:
        load_definitions([tmp_path])
    (problem,) = caught.value.problems
    assert problem.source == str(event) and problem.event == "wf--a" and problem.kind == "event"
    assert "name defined twice (also in" in problem.message and "a-wf.yaml" in problem.message


def test_an_inline_event_may_not_take_the_name_of_an_event(tmp_path):
    _write(tmp_path, "name: wf--a\ntype: bash\nscript: x\n", "a-event.yaml")
    workflow = _write(
        tmp_path, _workflow("  - name: a\n    run: {type: bash, script: x}\n"), "b-wf.yaml"
    )
    with pytest.raises(InvalidEvent) as caught:
        load_definitions([tmp_path])
    (problem,) = caught.value.problems
    assert problem.source == str(workflow) and "wf--a" in str(caught.value)
    assert "name defined twice" in problem.message


def test_two_workflows_may_not_share_a_name(tmp_path):
    _write(tmp_path, _workflow("  - name: a\n    event: e\n"), "a.yaml")
    _write(tmp_path, _workflow("  - name: b\n    event: e\n"), "b.yaml")
    with pytest.raises(InvalidEvent, match="workflow 'wf': name: name defined twice"):
        load_definitions([tmp_path])


# -- references ---------------------------------------------------------------------------


def test_a_step_event_that_exists_nowhere_is_reported(tmp_path):
    document = _workflow(
        "  - name: a\n    run: {type: bash, script: x}\n"
        "  - name: b\n    event: ghost\n    needs: [a]\n"
        "  - name: c\n    event: wf--a\n    needs: [b]\n"
    )
    path = _write(tmp_path, document)
    with pytest.raises(InvalidEvent) as caught:
        load_definitions([path])
    (problem,) = caught.value.problems
    assert problem.field == "steps[1].event" and problem.event == "wf"
    assert problem.kind == "workflow"
    assert "event 'ghost' does not exist" in problem.message
    # Without references, it loads; check_references then says the same, and a deployed
    # event of that name satisfies it.
    found = load_definitions([path], references=False)
    assert [p.field for p in check_references(found)] == ["steps[1].event"]
    assert check_references(found, known=["ghost"]) == []


def test_an_event_defined_beside_the_workflow_satisfies_its_step(tmp_path):
    _write(tmp_path, _workflow("  - name: a\n    event: ghost\n"), "wf.yaml")
    assert check_references(load_definitions([tmp_path], references=False))
    _write(tmp_path, "name: ghost\ntype: bash\nscript: x\n", "ghost.yaml")
    assert check_references(load_definitions([tmp_path])) == []


def test_a_workflow_action_naming_no_event_is_reported():
    (workflow,) = parse_documents(
        _workflow("  - name: a\n    event: e\n", head="actions: [{on: failure, run_event: nope}]\n")
    )
    problems = check_references(Definitions(workflows=[workflow]), known=["e"])
    assert [(p.field, p.kind, p.event) for p in problems] == [
        ("actions[0].run_event", "workflow", "wf")
    ]


# -- to_parameters ------------------------------------------------------------------------


def test_parameters_round_trip_through_the_model(tmp_path):
    (tmp_path / "s.sh").write_text("echo from file\n")
    document = DIAMOND.replace("      script: echo left\n", "      script_file: s.sh\n")
    document += "schedule: {cron: '0 3 * * *'}\ntags: [x]\npriority: high\ntimeout: 2h\n"
    found = load_definitions([_write(tmp_path, document)], references=False)
    (workflow,) = found.workflows
    assert workflow.step("left").run.script == "echo from file\n"
    parameters = workflow.to_parameters()
    assert "status" not in parameters
    inline = parameters["steps"][1]["run"]
    assert not {"name", "status", "script_file"} & set(inline)
    again = Workflow.model_validate(parameters)
    # Neither the status (the deployment's paused flag holds it) nor the script's file
    # (its text is the script) travel; everything else does.
    assert again.status.value == "draft" and again.step("left").run.script_file is None
    assert again.step("left").run.script == "echo from file\n"
    unsent = {"status": True, "steps": {"__all__": {"run": {"script_file"}}}}
    assert again.model_dump(exclude=unsent) == workflow.model_dump(exclude=unsent)
    assert again.step("left").run.name == "wf--left"
    assert again.step("left").run.tags == ["mine", "workflow:wf"]  # not tagged twice
    assert again.to_parameters() == parameters


# -- overlapping ---------------------------------------------------------------------------


def _overlapping(steps: str, head: str = "") -> list[tuple[str, str]]:
    (workflow,) = parse_documents(_workflow(steps, head))
    return workflow.overlapping()


def test_a_for_each_running_several_items_at_once_overlaps():
    steps = "  - name: a\n    event: e\n    for_each: [1, 2]\n"
    assert _overlapping(steps) == [("a", "its for_each runs several items at once")]
    assert _overlapping(steps + "    max_parallel: 1\n") == []
    assert _overlapping(steps, head="max_parallel: 1\n") == []
    assert _overlapping(steps + "    max_parallel: 2\n", head="max_parallel: 1\n") == [
        ("a", "its for_each runs several items at once")
    ]


def test_unordered_steps_of_one_event_overlap_and_ordered_ones_do_not():
    parallel = "  - name: a\n    event: e\n  - name: b\n    event: e\n  - name: c\n    event: f\n"
    assert _overlapping(parallel) == [("b", "step a runs e too, maybe at once")]
    chained = (
        "  - name: a\n    event: e\n"
        "  - name: m\n    event: f\n    needs: [a]\n"
        "  - name: b\n    event: e\n    needs: [{step: m, on: always}]\n"
    )
    assert _overlapping(chained) == []
    inline = "  - name: a\n    run: {type: bash, script: x}\n  - name: b\n    run: {type: bash, script: x}\n"
    assert _overlapping(inline) == []


def test_overlapping_does_not_depend_on_the_order_steps_are_listed():
    later_first = "  - name: b\n    event: e\n    needs: [a]\n  - name: a\n    event: e\n"
    assert _overlapping(later_first) == []


# -- steps that can never run ---------------------------------------------------------


@pytest.mark.parametrize(
    "needs, other_on",
    [
        ("[a, fix]", "failure"),  # the main branch joined with a's failure branch
        ("[{step: a, on: failure}, fix]", "success"),  # the failure branch joined with a's success
        ("[{step: a, on: condition}, fix]", "failure"),
    ],
)
def test_a_step_that_can_never_run_is_refused_on_its_needs(tmp_path, needs, other_on):
    document = _workflow(
        f"""\
        - {{name: a, event: e}}
        - {{name: fix, event: e, needs: [{{step: a, on: {other_on}}}]}}
        - {{name: report, event: e, needs: {needs}}}
        """
    )
    refused, source = _refused(tmp_path, document)
    (problem,) = refused.problems
    assert problem.field == "steps[2].needs" and problem.line == 6, problem
    assert problem.message.startswith("can never run: it needs a to ") and "fix" in problem.message


@pytest.mark.parametrize(
    "report",
    [
        "{name: report, event: e, needs: [a, fix], join: any}",
        "{name: report, event: e, needs: [{step: a, on: always}, fix]}",
        "{name: report, event: e, needs: [{step: fix, on: always}, a]}",
    ],
)
def test_joins_that_can_run_are_accepted(report):
    from cronium_prefect.loader import parse_documents

    document = _workflow(
        f"""\
        - {{name: a, event: e}}
        - {{name: fix, event: e, needs: [{{step: a, on: failure}}]}}
        - {report}
        """
    )
    (workflow,) = parse_documents(document, "f.yaml")
    assert [s.name for s in workflow.steps] == ["a", "fix", "report"]
