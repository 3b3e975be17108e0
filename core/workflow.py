"""The Workflow model: a graph of steps, each a run of an event, validated once at the edge.

A workflow is a document of its own kind (`kind: workflow`) in the same files as events.
Its steps name deployed events (or define one inline, applied as an event of its own);
`needs` says what each waits for and on what condition, `for_each` runs a step once per
item, and every input is a template over the workflow's input and the upstream outputs.
What the model checks here (unknown steps, cycles, references to steps that are not
upstream, templates that do not parse) never has to be checked again while it runs.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StrictInt, model_validator

from .durations import Duration
from .errors import TemplateError
from .event import (
    POOL_PATTERN,
    Action,
    Event,
    EventStatus,
    Priority,
    Schedule,
    _check_name,
    _not_prefects,
    _Strict,
)
from .webhook import Webhook

__all__ = [
    "Workflow",
    "Step",
    "Need",
    "When",
    "WORKFLOW_KIND",
    "MAX_STEPS",
    "MAX_ITEMS",
    "inline_event_name",
]

WORKFLOW_KIND = "workflow"  # `kind: workflow` tells a workflow document from an event's
MAX_STEPS = 500
MAX_ITEMS = 1000  # runs one for_each step may start
MAX_PARALLEL = 100


class When(str, Enum):
    """On what an upstream step's end lets a step that needs it run."""

    success = "success"  # it succeeded (the default)
    failure = "failure"  # it failed: a failure branch
    always = "always"  # it ended, however: cleanup
    condition = "condition"  # it succeeded and its script set the condition


def _need(value: Any) -> Any:
    """`fetch` is short for `{step: fetch, on: success}`."""
    return {"step": value} if isinstance(value, str) else value


class Need(_Strict):
    step: Annotated[str, AfterValidator(_check_name)]
    on: When = When.success


class Step(_Strict):
    """One node of the graph: a run of `event` (or of the `run` defined inline)."""

    name: Annotated[str, AfterValidator(_check_name)] = Field(
        description="Unique in the workflow; 1-100 characters of a-z, 0-9 and '-'."
    )
    event: Annotated[str, AfterValidator(_check_name)] | None = Field(
        default=None, description="The deployed event this step runs."
    )
    run: Event | None = Field(
        default=None,
        description="An event defined inline (every event field but name and status); "
        "applied, active, as the event `<workflow>--<step>`.",
    )
    needs: list[Annotated[Need, BeforeValidator(_need)]] = Field(default_factory=list)
    join: Literal["all", "any"] = Field(
        default="all", description="Run when all needs hold, or as soon as any does."
    )
    input: Any = Field(
        default=None,
        description="The run's input; text in it is a template. Unset: the workflow's "
        "input for a first step, else the upstream output (a mapping by step for several).",
    )
    for_each: str | list[Any] | None = Field(
        default=None, description="A list, or a template giving one: one run per item."
    )
    max_parallel: StrictInt | None = Field(
        default=None, ge=1, le=MAX_PARALLEL, description="for_each runs at once."
    )

    @model_validator(mode="after")
    def _one_target(self) -> Step:
        if (self.event is None) == (self.run is None):
            raise ValueError("a step needs exactly one of event (a deployed event) or run")
        if self.max_parallel is not None and self.for_each is None:
            raise ValueError("max_parallel goes with for_each")
        if isinstance(self.for_each, list) and len(self.for_each) > MAX_ITEMS:
            raise ValueError(f"for_each: {len(self.for_each)} items, over the limit of {MAX_ITEMS}")
        listed = [n.step for n in self.needs]
        twice = sorted({n for n in listed if listed.count(n) > 1})
        if twice:
            raise ValueError(f"needs: listed twice: {', '.join(twice)}")
        return self

    @property
    def upstream(self) -> list[str]:
        return [n.step for n in self.needs]


def inline_event_name(workflow: str, step: str) -> str:
    return f"{workflow}--{step}"


def inline_presets(data: Any) -> list[tuple[tuple[Any, ...], str]]:
    """(location, message) of each `name` or `status` given in an inline `run:`: the
    workflow sets them (its name and step's, and active)."""
    if not isinstance(data, dict):
        return []
    steps = data.get("steps")
    workflow = data.get("name") if isinstance(data.get("name"), str) else "?"
    found = []
    for i, step in enumerate(steps if isinstance(steps, list) else []):
        run = step.get("run") if isinstance(step, dict) else None
        if not isinstance(run, dict) or not isinstance(step.get("name"), str):
            continue
        for field in ("name", "status"):
            if field in run:
                found.append(
                    (
                        ("steps", i, "run", field),
                        f"set by the workflow (the event is "
                        f"{inline_event_name(workflow, step['name'])!r}, active)",
                    )
                )
    return found


class Workflow(_Strict):
    """Steps and what they need, run as one Prefect flow run (see SPEC and docs)."""

    kind: Literal["workflow"] = "workflow"  # what tells a workflow document from an event
    name: Annotated[str, AfterValidator(_check_name)]
    description: str = Field(default="", max_length=500)
    status: EventStatus = EventStatus.draft
    schedule: Schedule | None = None
    priority: Priority = Priority.normal
    overlap: Literal["skip", "queue", "allow"] = "skip"
    timeout: Duration = Field(default=86400.0, gt=0, le=7 * 86400)
    max_parallel: StrictInt = Field(
        default=8, ge=1, le=MAX_PARALLEL, description="Step runs at once, items included."
    )
    on_failure: Literal["fail_fast", "continue"] = Field(
        default="fail_fast",
        description="fail_fast: a failed step stops the rest (running steps are cancelled; "
        "only failure and always steps still start); continue: other branches go on.",
    )
    tags: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list)
    owner: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,100}$")] | None = None
    pool: Annotated[str, Field(pattern=POOL_PATTERN), AfterValidator(_not_prefects)] | None = None
    actions: list[Action] = Field(default_factory=list)
    webhook: Webhook | None = None
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)

    @model_validator(mode="before")
    @classmethod
    def _name_inline_events(cls, data: Any) -> Any:
        """An inline event is named after its workflow and step, and always active."""
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
            return data
        workflow = data.get("name") if isinstance(data.get("name"), str) else "?"
        steps = []
        for step in data["steps"]:
            if isinstance(step, Step):  # built in Python: named here like a document's
                step = {**step.model_dump(exclude_unset=True, exclude={"run"}), "run": step.run}
                step = {k: v for k, v in step.items() if v is not None}
            run = step.get("run") if isinstance(step, dict) else None
            if isinstance(run, Event):  # its own name and status are the workflow's to set
                run = run.model_dump(exclude_unset=True, exclude={"name", "status"})
                step = {**step, "run": run}
            if isinstance(run, dict) and isinstance(step.get("name"), str):
                for _, message in inline_presets({"name": workflow, "steps": [step]}):
                    raise ValueError(f"step {step['name']!r}: {message}")
                run = {
                    "overlap": "allow",  # run by this workflow only, whose overlap rules
                    **run,
                    "name": inline_event_name(workflow, step["name"]),
                    "status": "active",
                }
                tags, marker = run.get("tags", []), f"workflow:{workflow}"
                if isinstance(tags, list) and marker not in tags:  # else the event refuses it
                    run["tags"] = [*tags, marker]
                if "owner" in data and "owner" not in run:
                    run["owner"] = data["owner"]
                step = {**step, "run": run}
            steps.append(step)
        return {**data, "steps": steps}

    @model_validator(mode="after")
    def _graph(self, info: Any) -> Workflow:
        # The loader checks the graph itself, to put each problem on its own line.
        if not (info.context or {}).get("graph_checked_later"):
            problems = graph_problems(self)
            if problems:
                raise ValueError("; ".join(f"{_dotted(loc)}: {m}" for loc, m in problems))
        return self

    @property
    def variables(self) -> None:
        """What its messages may read, as an event's `variables` (every variable its
        owner can see)."""
        return None

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    def event_of(self, step: Step) -> str:
        """The event a step runs."""
        return step.event or inline_event_name(self.name, step.name)

    def inline_events(self) -> list[Event]:
        """The events defined inline in steps, applied as events of their own."""
        return [step.run for step in self.steps if step.run is not None]

    def sinks(self) -> list[str]:
        """Steps no other step needs: what the workflow produces."""
        needed = {n.step for s in self.steps for n in s.needs}
        return [s.name for s in self.steps if s.name not in needed]

    def overlapping(self) -> list[tuple[str, str]]:
        """(step, why) for each step that may run its event while another run of that
        event runs in this workflow run: a for_each with more than one item at a time, or
        steps of the same event neither of which needs the other."""
        by_name = {s.name: s for s in self.steps}
        found = []
        for i, step in enumerate(self.steps):
            event = self.event_of(step)
            if step.for_each is not None and (step.max_parallel or self.max_parallel) > 1:
                found.append((step.name, "its for_each runs several items at once"))
                continue
            for other in self.steps[:i]:
                unordered = other.name not in _ancestors(by_name, step.name) and (
                    step.name not in _ancestors(by_name, other.name)
                )
                if self.event_of(other) == event and unordered:
                    found.append((step.name, f"step {other.name} runs {event} too, maybe at once"))
                    break
        return found

    def to_parameters(self) -> dict[str, Any]:
        """JSON for the deployment's parameters, without the status (the paused flag);
        `Workflow.model_validate` reads it back."""
        inline = {"__all__": {"run": {"script_file", "status", "name"}}}
        return self.model_dump(
            mode="json", exclude={"status": True, "steps": inline}, exclude_none=True
        )


Location = tuple[Any, ...]


def _dotted(loc: Location) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def graph_problems(workflow: Workflow) -> list[tuple[Location, str]]:
    """What is wrong with the graph, each with the location of its field: steps named
    twice, needs naming no step (or the step itself), cycles, templates that do not parse
    or read steps that are not upstream, and a run_event of the workflow itself."""
    problems: list[tuple[Location, str]] = []
    seen: dict[str, int] = {}
    for i, step in enumerate(workflow.steps):
        if step.name in seen:
            problems.append(
                (
                    ("steps", i, "name"),
                    f"step {step.name!r} is defined twice (steps[{seen[step.name]}])",
                )
            )
        seen.setdefault(step.name, i)
    for i, step in enumerate(workflow.steps):
        for j, need in enumerate(step.needs):
            if need.step == step.name:
                problems.append((("steps", i, "needs", j), f"step {step.name!r} needs itself"))
            elif need.step not in seen:
                problems.append((("steps", i, "needs", j), f"no step named {need.step!r}"))
    if not problems:
        problems += _cycles(workflow.steps)
    if not problems:
        problems += _references(workflow.steps) + _unreachable(workflow.steps)
    for i, action in enumerate(workflow.actions):
        if action.run_event == workflow.name:
            problems.append(
                (("actions", i, "run_event"), "a workflow's action cannot start the workflow")
            )
    return problems


def _cycles(steps: list[Step]) -> list[tuple[Location, str]]:
    index = {s.name: i for i, s in enumerate(steps)}
    edges = {s.name: s.upstream for s in steps}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    problems: list[tuple[Location, str]] = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for upstream in edges[name]:
            if state.get(upstream) == 1:
                cycle = " -> ".join([*path[path.index(upstream) :], upstream])
                problems.append((("steps", index[name], "needs"), f"needs form a cycle: {cycle}"))
            elif upstream not in state:
                visit(upstream, [*path, upstream])
        state[name] = 2

    for name in edges:
        if name not in state:
            visit(name, [name])
    return problems


_OUTCOME = {When.success: "succeed", When.condition: "succeed", When.failure: "fail"}


def _unreachable(steps: list[Step]) -> list[tuple[Location, str]]:
    """Steps that can never run: under `join: all`, one that needs X to end one way and
    also needs a step Y to succeed that (under `join: all`) needs X to end the other way
    (the main branch joined with X's failure branch, say)."""
    by_name = {s.name: s for s in steps}
    problems: list[tuple[Location, str]] = []
    for i, step in enumerate(steps):
        if step.join != "all":
            continue
        wanted = {n.step: _OUTCOME[n.on] for n in step.needs if n.on in _OUTCOME}
        for need in step.needs:
            other = by_name[need.step]
            if _OUTCOME.get(need.on) != "succeed" or other.join != "all":
                continue
            for inner in other.needs:
                mine = wanted.get(inner.step)
                if mine and inner.on in _OUTCOME and _OUTCOME[inner.on] != mine:
                    problems.append(
                        (
                            ("steps", i, "needs"),
                            f"can never run: it needs {inner.step} to {mine}, and "
                            f"{other.name} to succeed, which runs only if {inner.step} "
                            f"{_OUTCOME[inner.on]}s (use join: any, or on: always)",
                        )
                    )
    return problems


def _templates(value: Any, loc: Location) -> list[tuple[Location, str]]:
    """(location, template) for every text in a step's input that is a template."""
    from .templates import is_template

    if is_template(value):
        return [(loc, value)]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in _templates(v, (*loc, k))]
    if isinstance(value, list):
        return [t for i, v in enumerate(value) for t in _templates(v, (*loc, i))]
    return []


def _ancestors(by_name: dict[str, Step], name: str) -> set[str]:
    found: set[str] = set()
    todo = list(by_name[name].upstream)
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo.extend(by_name[current].upstream)
    return found


def _references(steps: list[Step]) -> list[tuple[Location, str]]:
    """Templates must parse, and read only steps upstream of theirs."""
    from .templates import is_template, referenced  # Jinja: only when there are workflows

    by_name = {s.name: s for s in steps}
    problems: list[tuple[Location, str]] = []
    for i, step in enumerate(steps):
        upstream = _ancestors(by_name, step.name)
        fields = _templates(step.input, ("steps", i, "input"))
        fields += _templates(step.for_each, ("steps", i, "for_each"))
        for loc, template in fields:
            try:
                read = referenced(template, "steps", _dotted(loc))
            except TemplateError as exc:
                problems.append((loc, str(exc).removeprefix(f"{_dotted(loc)}: ")))
                continue
            for name in sorted(read - upstream):
                what = "is no step" if name not in by_name else f"is not upstream of {step.name!r}"
                problems.append((loc, f"reads steps.{name}, which {what}"))
        if isinstance(step.for_each, str) and not is_template(step.for_each):
            problems.append(
                (
                    ("steps", i, "for_each"),
                    "give a list or a template giving one (e.g. '{{ steps.fetch.output }}'), "
                    f"got {step.for_each!r}",
                )
            )
    return problems
