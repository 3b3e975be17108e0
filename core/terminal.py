"""Text from scripts, servers and HTTP answers made safe to show: terminal control
characters are shown as `\\xNN` instead of acting (a script must not clear the user's
screen, set the terminal's title, write its clipboard through OSC 52 or move the cursor
over earlier lines). Pure: no I/O."""

from __future__ import annotations

import re

__all__ = ["visible"]

# C0 controls but tab and newline, DEL, and C1 (0x9b is CSI on 8-bit terminals).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Colour and style (SGR: ESC [ digits ; ... m) only: what `ls --color` or a test runner
# prints, and nothing a terminal does beyond painting text.
_SGR = re.compile(r"\x1b\[[0-9;]{0,32}m")


def _shown(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def visible(text: str, keep_colours: bool = False) -> str:
    """`text` with every control character shown as `\\xNN`; with `keep_colours`, colour
    and style sequences stay as they are."""
    if not keep_colours:
        return _CONTROL.sub(_shown, text)
    parts, last = [], 0
    for colour in _SGR.finditer(text):
        parts += [_CONTROL.sub(_shown, text[last : colour.start()]), colour.group()]
        last = colour.end()
    parts.append(_CONTROL.sub(_shown, text[last:]))
    return "".join(parts)
