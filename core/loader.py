"""Reading event and workflow definitions from YAML / JSON files and folders, with
locations in errors (the text itself is read by core/documents.py)."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .documents import (
    DocumentError,
    Location,
    dotted,
    json_documents,
    line_for,
    yaml_documents,
)
from .errors import InvalidEvent, Problem
from .event import Event
from .workflow import WORKFLOW_KIND, Workflow, graph_problems, inline_presets

__all__ = [
    "Definitions",
    "load_definitions",
    "load_paths",
    "load_file",
    "parse_documents",
    "parse_text",
    "validate_event",
    "validate_document",
    "check_references",
    "kind_of",
]

MAX_FILE_BYTES = 5 * 1024 * 1024
SUFFIXES = (".yaml", ".yml", ".json")


def _message(error: dict[str, Any], model: type[BaseModel]) -> str:
    if error["type"] == "extra_forbidden":
        key = str(error["loc"][-1])
        parent: Any = model
        for part in error["loc"][:-1]:
            if isinstance(part, int) or _is_pydantic_tag(part):  # a list index, a union tag
                continue
            field = getattr(parent, "model_fields", {}).get(part)
            parent = _model_in(field.annotation) if field is not None else None
            if parent is None:
                break
        known = list(getattr(parent, "model_fields", {})) if parent else []
        close = difflib.get_close_matches(key, known, n=1)
        return f"unknown field{f' (did you mean {close[0]!r}?)' if close else ''}"
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if error["type"] in ("missing",) or isinstance(value, dict):
        return message
    shown = repr(value)
    if shown in message:
        return message
    return f"{message} (got {shown[:77] + '...' if len(shown) > 80 else shown})"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds: itself, or inside list[...], X | None, Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for inner in typing.get_args(annotation):
        found = _model_in(inner)
        if found is not None:
            return found
    return None


_TAGS = {"str", "int", "float", "bool", "list", "dict"}


def _is_pydantic_tag(part: Any) -> bool:
    """Union members and validators pydantic adds to error locations ('str', 'dict[...]')."""
    text = str(part)
    return text in _TAGS or (text.endswith("]") and "[" in text and not isinstance(part, int))


def validate_event(
    data: Any,
    source: str = "",
    lines: dict[Location, int] | None = None,
    line: int | None = None,
    base_dir: Path | None = None,
) -> Event:
    """One event document → Event, or InvalidEvent naming each field, value and line."""
    found = validate_document(data, source, lines, line, base_dir)
    if isinstance(found, Workflow):
        raise InvalidEvent([Problem("this is a workflow, not an event", source=source, line=line)])
    return found


def validate_document(
    data: Any,
    source: str = "",
    lines: dict[Location, int] | None = None,
    line: int | None = None,
    base_dir: Path | None = None,
) -> Event | Workflow:
    """One document → Event, or Workflow for `kind: workflow`; else InvalidEvent naming
    each field, value and line."""
    lines = lines or {}
    if not isinstance(data, dict):
        raise InvalidEvent(
            [
                Problem(
                    f"an event must be a mapping of fields, got {type(data).__name__}",
                    source=source,
                    line=line,
                )
            ]
        )
    model: type[Event] | type[Workflow] = Workflow if data.get("kind") == WORKFLOW_KIND else Event
    kind = "workflow" if model is Workflow else "event"
    name = data.get("name") if isinstance(data.get("name"), str) else ""

    def problem(message: str, loc: Sequence[Any]) -> Problem:
        return Problem(
            message,
            field=dotted(tuple(loc)),
            source=source,
            line=line_for(lines, loc) or line,
            event=name,
            kind=kind,
        )

    context = {"base_dir": str(base_dir or Path.cwd()), "graph_checked_later": True}
    # The model refuses these for the whole document; here they are put on their field.
    preset = [problem(m, loc) for loc, m in inline_presets(data)] if model is Workflow else []
    try:
        found = model.model_validate(data, context=context)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = [p for p in error["loc"] if not _is_pydantic_tag(p)]
            if preset and not loc:
                continue  # the same refusal, without its place
            problems.append(problem(_message(error, model), loc))
        raise InvalidEvent(preset + problems) from None
    if isinstance(found, Workflow):
        graph = graph_problems(found)
        if graph:
            raise InvalidEvent([problem(message, loc) for loc, message in graph])
    return found


@dataclass
class Definitions:
    """What definition files hold: events and workflows."""

    events: list[Event] = field(default_factory=list)
    workflows: list[Workflow] = field(default_factory=list)

    def add(self, found: Event | Workflow) -> None:
        (self.workflows if isinstance(found, Workflow) else self.events).append(found)

    @property
    def all_events(self) -> list[Event]:
        """The events, with those workflows define inline in their steps."""
        return [*self.events, *(e for w in self.workflows for e in w.inline_events())]


def parse_documents(
    text: str, source: str = "<text>", fmt: str = "yaml", base_dir: Path | None = None
) -> list[Event | Workflow]:
    """Every event and workflow in `text` (YAML documents or JSON object/array); all
    problems at once."""
    found: list[Event | Workflow] = []
    problems: list[Problem] = []
    try:
        documents = json_documents(text) if fmt == "json" else yaml_documents(text)
        first_line: dict[str, int] = {}
        for data, lines, line in documents:
            try:
                document = validate_document(data, source, lines, line, base_dir)
            except InvalidEvent as exc:
                problems.extend(exc.problems)
                continue
            if document.name in first_line:
                problems.append(
                    Problem(
                        f"name defined twice in this file (first at line "
                        f"{first_line[document.name]})",
                        field="name",
                        source=source,
                        line=line,
                        event=document.name,
                        kind=kind_of(document),
                    )
                )
                continue
            first_line[document.name] = line
            found.append(document)
    except DocumentError as exc:
        kind = "workflow" if exc.identity.get("kind") == WORKFLOW_KIND else "event"
        name = exc.identity.get("name", "")
        problems.append(
            Problem(str(exc), field=exc.field, source=source, line=exc.line, event=name, kind=kind)
        )
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        detail = getattr(exc, "problem", None) or str(exc)
        problems.append(
            Problem(f"invalid YAML: {detail}", source=source, line=mark.line + 1 if mark else None)
        )
    except RecursionError:
        problems.append(Problem("nested too deeply", source=source))
    if problems:
        raise InvalidEvent(problems)
    return found


def kind_of(document: Event | Workflow) -> str:
    return "workflow" if isinstance(document, Workflow) else "event"


def _events_only(documents: list[Event | Workflow], source: str) -> list[Event]:
    workflows = [d.name for d in documents if isinstance(d, Workflow)]
    if workflows:
        raise InvalidEvent(
            [
                Problem(
                    "is a workflow: `cronium apply` deploys it and `cronium trigger` runs it",
                    source=source,
                    event=name,
                    kind="workflow",
                )
                for name in workflows
            ]
        )
    return documents  # type: ignore[return-value]


def parse_text(
    text: str, source: str = "<text>", fmt: str = "yaml", base_dir: Path | None = None
) -> list[Event]:
    """Every event in `text`; a workflow there is a problem (see parse_documents)."""
    return _events_only(parse_documents(text, source, fmt, base_dir), source)


def load_documents(path: Path) -> list[Event | Workflow]:
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidEvent(
            [Problem(f"cannot read: {exc.strerror or exc}", source=source)]
        ) from None
    if len(raw) > MAX_FILE_BYTES:
        raise InvalidEvent(
            [
                Problem(
                    f"file is {len(raw)} bytes; definitions are limited to {MAX_FILE_BYTES}",
                    source=source,
                )
            ]
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InvalidEvent(
            [Problem(f"not UTF-8 text (byte {exc.start})", source=source, line=line)]
        ) from None
    fmt = "json" if path.suffix.lower() == ".json" else "yaml"
    return parse_documents(text, source, fmt, base_dir=path.parent)


def load_file(path: Path) -> list[Event]:
    """The events of one file; a workflow there is a problem."""
    return _events_only(load_documents(path), str(path))


def _definition_files(paths: Iterable[Path]) -> Iterable[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()
            )
        else:
            yield path


def load_definitions(paths: Iterable[Path | str], references: bool = True) -> Definitions:
    """All events and workflows under the given files/folders. Raises one InvalidEvent
    with every problem, including names defined twice (events, workflows and the events
    workflows define inline share one namespace) and, with `references`, `run_event`
    targets and steps' events that do not exist among them, and run_event cycles; pass
    False to check those against more events (`check_references`)."""
    found = Definitions()
    origin: dict[str, str] = {}
    problems: list[Problem] = []
    for path in _definition_files(Path(p) for p in paths):
        if not path.exists():
            problems.append(Problem("no such file or folder", source=str(path)))
            continue
        try:
            loaded = load_documents(path)
        except InvalidEvent as exc:
            problems.extend(exc.problems)
            continue
        for document in loaded:
            names = [document.name]
            if isinstance(document, Workflow):
                names += [e.name for e in document.inline_events()]
            for name in names:
                if name in origin:
                    problems.append(
                        Problem(
                            f"name defined twice (also in {origin[name]})",
                            field="name",
                            source=str(path),
                            event=name,
                            kind=kind_of(document),
                        )
                    )
                origin.setdefault(name, str(path))
            found.add(document)
    if not problems and references:
        problems.extend(check_references(found))
    if problems:
        raise InvalidEvent(problems)
    return found


def load_paths(paths: Iterable[Path | str], references: bool = True) -> list[Event]:
    """All events under the given files/folders (see load_definitions); a workflow among
    them is a problem."""
    found = load_definitions(paths, references)
    return _events_only([*found.events, *found.workflows], " ".join(map(str, paths)))


def check_references(
    found: Definitions | Sequence[Event], known: Iterable[str] = ()
) -> list[Problem]:
    """`run_event` targets and steps' events must exist (among the definitions or `known`,
    the names of deployed events) and run_event chains never form a cycle."""
    if not isinstance(found, Definitions):
        found = Definitions(events=list(found))
    events = found.all_events
    names = {e.name for e in events} | set(known)
    edges = {e.name: [a.run_event for a in e.actions if a.run_event] for e in events}
    problems = [
        Problem(
            f"run_event {target!r} names no event",
            field=f"actions[{i}].run_event",
            event=d.name,
            kind=kind_of(d),
        )
        for d in [*events, *found.workflows]
        for i, target in enumerate(a.run_event for a in d.actions)
        if target and target not in names
    ]
    for workflow in found.workflows:
        problems += [
            Problem(
                f"event {step.event!r} does not exist (define it, or use run: for an inline event)",
                field=f"steps[{i}].event",
                event=workflow.name,
                kind="workflow",
            )
            for i, step in enumerate(workflow.steps)
            if step.event and step.event not in names
        ]
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in edges.get(name, []):
            if state.get(target) == 1:
                cycle = " -> ".join([*path[path.index(target) :], target])
                problems.append(
                    Problem(f"run_event chain forms a cycle: {cycle}", field="actions", event=name)
                )
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in edges:
        if name not in state:
            visit(name, [name])
    return problems
