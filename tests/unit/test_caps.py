"""The caps on values sent to Prefect's API (core/caps.py)."""

from __future__ import annotations

import pytest

from cronium_prefect.caps import ERROR_CHARS, InputTooLarge, cap_text, check_input


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
