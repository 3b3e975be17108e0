"""YAML and JSON text as Python values, remembering the line of every value.

YAML is read with YAML 1.2 booleans (`on:` stays the word "on"), duplicate keys refused,
and a node budget so that alias bombs and absurd nesting fail fast and clearly.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import yaml

__all__ = ["DocumentError", "Location", "yaml_documents", "json_documents", "line_for", "dotted"]

MAX_NODES = 100_000
MAX_DEPTH = 64
SLOW_PARSER_BYTES = 256 * 1024  # above this, libyaml's errors are shown as they are

Location = tuple[Any, ...]


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: `on`, `off`, `yes`, `no` are plain words."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


_Yaml12CLoader: type | None = None
if getattr(yaml, "__with_libyaml__", False):

    class _Yaml12CLoader(yaml.CSafeLoader):  # type: ignore[no-redef]
        """The same, on libyaml's parser: only the composing is in C, the rest is shared."""

    _Yaml12CLoader.yaml_implicit_resolvers = _Yaml12Loader.yaml_implicit_resolvers


_TOO_LONG = f"a number with more than {sys.get_int_max_str_digits()} digits"


class DocumentError(Exception):
    def __init__(self, message: str, line: int | None, field: str = ""):
        super().__init__(message)
        self.line, self.field = line, field
        self.identity: dict[str, str] = {}  # the document's `name` and `kind`, when known


def dotted(path: Location) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Builder:
    """Turns a composed YAML node tree into Python values, remembering each path's line."""

    def __init__(self, loader: yaml.SafeLoader):
        self.loader = loader
        self.lines: dict[Location, int] = {}
        self.budget = MAX_NODES

    def build(self, node: yaml.Node, path: Location = ()) -> Any:
        line = node.start_mark.line + 1
        self.lines.setdefault(path, line)
        self.budget -= 1
        if self.budget < 0:
            raise DocumentError(
                f"document too large: more than {MAX_NODES} values (alias expansion?)", line
            )
        if len(path) > MAX_DEPTH:
            raise DocumentError(f"nested deeper than {MAX_DEPTH} levels", line, dotted(path))
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # resolves `<<` merge keys
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise DocumentError("mapping keys must be plain values", line, dotted(path))
                key = self._construct(key_node, (*path, "<key>"))
                key_line = key_node.start_mark.line + 1
                if key in result:
                    raise DocumentError(
                        f"duplicate key {key!r} (first at line {self.lines[(*path, key)]})",
                        key_line,
                        dotted(path),
                    )
                self.lines[(*path, key)] = key_line
                result[key] = self.build(value_node, (*path, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._construct(node, path)

    def _construct(self, node: yaml.Node, path: Location) -> Any:
        """A scalar's value; a value Python refuses to build (a 5,000-digit integer, the
        date 2024-02-30) is a document error on its line, not a traceback."""
        try:
            return self.loader.construct_object(node)
        except ValueError as exc:
            message = _TOO_LONG if "integer string conversion" in str(exc) else str(exc)
            raise DocumentError(message, node.start_mark.line + 1, dotted(path)) from None


def _compose(text: str, loader_class: type) -> Iterable[tuple[Any, dict[Location, int], int]]:
    loader = loader_class(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            builder = _Builder(loader)
            try:
                built = builder.build(node)
            except DocumentError as exc:
                exc.identity = _identity(node)
                raise
            yield built, builder.lines, node.start_mark.line + 1
    finally:
        loader.dispose()


def _identity(node: yaml.Node) -> dict[str, str]:
    """`name` and `kind` of a document that could not be built, read off its nodes."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {
        key.value: value.value
        for key, value in node.value
        if isinstance(key, yaml.ScalarNode)
        and key.value in ("name", "kind")
        and isinstance(value, yaml.ScalarNode)
    }


def yaml_documents(text: str) -> Iterable[tuple[Any, dict[Location, int], int]]:
    """libyaml's parser when PyYAML has it (~8x faster: `apply` may read 10,000 files);
    a text it refuses is read again by the pure-Python one, whose messages we show. Tabs
    go to the pure-Python one too: libyaml accepts some that it refuses (`a:<tab>b`)."""
    if _Yaml12CLoader is not None and "\t" not in text:
        try:
            _count_values(text, _Yaml12CLoader)
            return list(_compose(text, _Yaml12CLoader))
        except DocumentError:
            if len(text) > SLOW_PARSER_BYTES:
                raise  # ours, not the parser's: reading it again would only be slower
        except (yaml.YAMLError, RecursionError):
            if len(text) > SLOW_PARSER_BYTES:
                raise  # the pure-Python parser takes ~40 s a MB: libyaml's word it is
        # Read lazily below: problems in earlier documents come first, as ever.
    return _compose(text, _Yaml12Loader)


def _count_values(text: str, loader_class: type) -> None:
    """Refuse a document of more than MAX_NODES values before any of it is built: the
    builder's own budget counts only after the composer has made every node (a 5 MB list
    of 2.5 million zeros took minutes to refuse)."""
    count = 0
    for event in yaml.parse(text, Loader=loader_class):
        if isinstance(event, yaml.DocumentStartEvent):
            count = 0
        elif isinstance(event, _VALUES):
            count += 1
            if count > MAX_NODES:
                raise DocumentError(
                    f"document too large: more than {MAX_NODES} values",
                    event.start_mark.line + 1,
                )


_VALUES = (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent, yaml.AliasEvent)


def json_documents(text: str) -> Iterable[tuple[Any, dict[Location, int], int]]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise DocumentError(f"duplicate key {key!r}", None)
            seen[key] = value
        return seen

    try:
        data = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"invalid JSON: {exc.msg} (column {exc.colno})", exc.lineno) from None
    except ValueError as exc:  # Python's cap on the digits of an int it converts from text
        message = _TOO_LONG if "integer string conversion" in str(exc) else str(exc)
        raise DocumentError(message, None) from None
    except RecursionError:
        raise DocumentError("nested too deeply", None) from None
    for item in data if isinstance(data, list) else [data]:
        yield item, {}, None


def line_for(lines: dict[Location, int], loc: Sequence[Any]) -> int | None:
    for end in range(len(loc), -1, -1):
        if tuple(loc[:end]) in lines:
            return lines[tuple(loc[:end])]
    return None
