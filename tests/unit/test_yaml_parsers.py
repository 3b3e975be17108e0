"""Definitions are read by libyaml's parser when PyYAML has it, with exactly the results of
the pure-Python one: same values, same lines, same refusals and messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from cronium_prefect import InvalidEvent, documents, parse_text
from tests.reliability.fuzz_cases import cases

ROOT = Path(__file__).resolve().parents[2]
FAST = documents._Yaml12CLoader


def outcome(text: str, loader_class: type) -> tuple:
    try:
        return ("ok", list(documents._compose(text, loader_class)))
    except Exception as exc:  # the kind of refusal is what is compared
        return ("refused", type(exc).__name__)


@pytest.mark.skipif(FAST is None, reason="PyYAML built without libyaml")
def test_both_parsers_agree_on_the_examples_and_the_fuzzed_definitions():
    texts = [p.read_text() for p in sorted((ROOT / "examples").rglob("*.y*ml"))]
    for _, raw, _ in cases():
        try:
            texts.append(raw.decode())
        except UnicodeDecodeError:
            continue
    assert len(texts) > 200
    for text in texts:
        assert outcome(text, FAST) == outcome(text, documents._Yaml12Loader), text[:200]


@pytest.mark.skipif(FAST is None, reason="PyYAML built without libyaml")
def test_what_only_libyaml_accepts_is_still_refused_with_the_same_message():
    assert outcome("a:\tb\n", FAST)[0] == "ok"  # libyaml is laxer with tabs
    for text in ("name: x\ntype:\tbash\nscript: x\n", "name: [unclosed\n"):
        with pytest.raises(InvalidEvent) as refused:
            parse_text(text, "f.yaml")
        assert "invalid YAML" in str(refused.value) and "f.yaml:" in str(refused.value)


@pytest.mark.skipif(FAST is None, reason="PyYAML built without libyaml")
def test_libyaml_reads_a_plain_definition_and_the_pure_python_parser_only_what_it_refuses(
    monkeypatch,
):
    """Which parser reads what (how much faster libyaml is: bench/apply_scale.py)."""
    used = []
    compose = documents._compose

    def spy(text, loader_class):
        used.append(loader_class)
        return compose(text, loader_class)

    monkeypatch.setattr(documents, "_compose", spy)
    parse_text("name: n\ntype: bash\nscript: echo hi\n")
    assert used == [FAST]
    used.clear()
    with pytest.raises(InvalidEvent):
        parse_text("name: [unclosed\n")
    assert used == [documents._Yaml12Loader]  # libyaml refused it (counting): read again
    used.clear()
    parse_text('name: n\ntype: bash\nscript: "a\tb"\n')  # a tab: the pure-Python one
    assert used == [documents._Yaml12Loader]
