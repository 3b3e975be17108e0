"""Text from scripts and servers cannot drive the user's terminal (core/terminal.py)."""

from __future__ import annotations

import re

import pytest

from cronium_prefect.terminal import visible

# Each acts on a terminal when printed raw.
HOSTILE = {
    "clear screen": "\x1b[2J\x1b[H",
    "set title (OSC, BEL)": "\x1b]0;pwned\x07",
    "clipboard write (OSC 52)": "\x1b]52;c;ZWNobyBwd25lZA==\x1b\\",
    "8-bit CSI": "\x9b2J",
    "cursor up and erase line": "\x1b[1A\x1b[2K",
    "backspaces over text": "safe\x08\x08\x08\x08evil",
    "carriage return overwrite": "ok\rFAILED",
    "colour with a hidden command": "\x1b[31mred\x1b[8mhidden\x1b]0;t\x07",
    "DEL and NUL": "a\x7fb\x00c",
}
_RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_no_control_character_acts(text):
    shown = visible(text)
    assert not _RAW_CONTROL.search(shown), repr(shown)
    assert "\\x1b" in shown or "\\x9b" in shown or "\\x0" in shown or "\\x7f" in shown


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_keeping_colours_keeps_only_colour_sequences(text):
    shown = visible(text, keep_colours=True)
    assert not _RAW_CONTROL.search(re.sub(r"\x1b\[[0-9;]*m", "", shown)), repr(shown)


def test_colours_tabs_and_newlines_are_kept():
    assert (
        visible("\x1b[1;32mok\x1b[0m\tdone\n", keep_colours=True) == "\x1b[1;32mok\x1b[0m\tdone\n"
    )
    assert visible("\x1b[1;32mok") == "\\x1b[1;32mok"
    assert visible("plain text, ünïcode, [red]markup[/]") == "plain text, ünïcode, [red]markup[/]"
