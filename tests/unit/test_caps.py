"""The caps on values sent to Prefect's API (core/caps.py)."""

from __future__ import annotations

import pytest

from cronium_prefect.caps import (
    ERROR_CHARS,
    JSON_DEPTH,
    InputTooLarge,
    NestedTooDeep,
    cap_text,
    check_input,
    json_depth,
    load_json,
)


@pytest.mark.parametrize(
    "value",
    ["x" * 2000, ["é" * 700], {"k": list(range(500))}, "\u2603" * 700],
    ids=["ascii text", "non-ascii list", "numbers", "3-byte characters"],
)
def test_input_over_the_limit_is_refused_by_its_json_size(value):
    with pytest.raises(InputTooLarge, match=r"--input is \d+ bytes of JSON, over .* 1024 bytes"):
        check_input(value, 1024, "--input")


def test_input_within_the_limit_passes():
    check_input({"rows": [1, 2, 3]}, 1024, "--input")
    check_input(None, 1024, "--input")


def test_a_cut_text_says_so_and_a_short_one_is_untouched():
    assert cap_text("short") == "short"
    assert cap_text(None) is None
    long = "e" * (ERROR_CHARS + 10)
    cut = cap_text(long)
    assert cut.startswith("e" * ERROR_CHARS) and cut.endswith(
        f"[cut: {ERROR_CHARS + 10} characters in all]"
    )


@pytest.mark.parametrize(
    "value, depth",
    [(1, 0), ([], 1), ({"a": [1, {"b": []}]}, 4), ([[]] * 3, 2), ("[[[", 0)],
)
def test_json_depth_counts_levels_of_arrays_and_objects(value, depth):
    assert json_depth(value) == depth


def test_a_value_nested_deeper_than_the_cap_is_refused_however_it_arrives():
    deep: list = []
    for _ in range(100_000):  # built in Python: no parser, no recursion
        deep = [deep]
    with pytest.raises(NestedTooDeep, match="the output of x nests 100001 levels"):
        check_input(deep, 10**9, "the output of x")
    for text in ("[" * 65 + "]" * 65, '{"a":' * 300 + "0" + "}" * 300, "[" * 100_000):
        with pytest.raises(NestedTooDeep, match=f"over the limit of {JSON_DEPTH}"):
            load_json(text, "output")
    assert load_json("[" * 64 + "]" * 64, "output") is not None
