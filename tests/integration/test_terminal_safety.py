"""What scripts and servers print cannot drive the user's terminal or Rich's markup: the
CLI shows control characters as `\\xNN` (colours stay) and brackets as text."""

from __future__ import annotations

import json
import os
import re

from cronium_prefect.blocks import SSHServer

from .test_apply import cronium, write_events

# Raw control characters that act on a terminal; colour (SGR) sequences are allowed.
_ACTING = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")

SCRIPT = r"""
printf 'clear\033[2J\033[Hscreen\n'
printf 'title\033]0;pwned\007 and clipboard \033]52;c;ZXZpbA==\033\\\n'
printf 'eight-bit \302\2332J csi\n'
printf 'over\rwrite and back\b\b\bspace\n'
printf '\033[32mgreen is fine\033[0m\n'
echo '[red]markup[/] and a lone [/] closing tag'
cronium_output "$(printf 'out\033[2Jput [/]')"
exit 3
"""


def _acting(text: str) -> list[str]:
    return _ACTING.findall(_COLOUR.sub("", text))


def test_run_and_logs_show_control_characters_and_markup_as_text(
    prefect_api, docker_client, tmp_path
):
    folder = write_events(
        tmp_path / "t",
        {"t.yaml": json.dumps({"name": "term-hostile", "type": "bash", "script": SCRIPT})},
    )
    done = cronium("run", str(folder / "t.yaml"))
    assert done.returncode == 1, done.stderr
    shown = done.stdout + done.stderr
    assert _acting(shown) == [], repr(_acting(shown))
    assert "\\x1b[2J" in shown and "\\x9b2J" in shown and "\\x07" in shown
    assert "\x1b[32mgreen is fine" in done.stderr  # a colour stays a colour
    assert "[red]markup[/] and a lone [/] closing tag" in shown
    assert "Traceback" not in shown
    as_json = cronium("run", str(folder / "t.yaml"), "--json")
    assert _acting(as_json.stdout) == []
    run_id = json.loads(as_json.stdout)["run_id"]
    logs = cronium("logs", run_id)
    assert logs.returncode == 0, logs.stderr
    assert _acting(logs.stdout + logs.stderr) == []
    assert "[red]markup[/]" in logs.stdout


def test_server_list_shows_a_description_as_text(prefect_api):
    SSHServer(
        host="127.0.0.1",
        port=22,
        username="nobody",
        description="[/] [bold]loud[/bold] \x1b]0;title\x07",
    ).save("term-server", overwrite=True, _sync=True)
    listed = cronium("server", "list", env={**os.environ, "COLUMNS": "300"})  # no wrapping
    assert listed.returncode == 0, listed.stderr
    assert "[/] [bold]loud[/bold]" in listed.stdout and "\\x1b]0;title\\x07" in listed.stdout
    assert _acting(listed.stdout) == []
