"""The exec-channel path reads out/ as frames a shell command prints on the server; what
comes back is checked as hostile input: names only under out/ and out/vars/ without a
`..`, sizes as numbers, a file that shrank in between refused, never a traceback."""

from __future__ import annotations

import io

import pytest

from cronium_prefect.errors import HelperProtocolError
from cronium_prefect.executors.ssh_files import read_frame

REFUSED = [
    "F 5 out/../../etc/output.json",
    "F 5 out/vars/../../x.json",
    "F 5 out/.hidden.json",
    "F 5 elsewhere/output.json",
    "F five out/output.json",
    "F 99999999999999999 out/output.json",
    "F 5 out/output.json extra",
    "L out/../output.json",
    "X out/output.json",
    "R /etc",
    "",
]


@pytest.mark.parametrize("header", REFUSED)
def test_a_frame_the_command_never_prints_is_refused(tmp_path, header):
    (tmp_path / "out" / "vars").mkdir(parents=True)
    with pytest.raises(OSError, match="unexpected answer"):
        read_frame(io.BytesIO(b"hello\nE\n"), header, tmp_path / "out", 100)
    assert list((tmp_path / "out").rglob("*")) == [tmp_path / "out" / "vars"]


def _read(tmp_path, header: str, body: bytes, limit: int = 100):
    (tmp_path / "out" / "vars").mkdir(parents=True, exist_ok=True)
    read_frame(io.BytesIO(body), header, tmp_path / "out", limit)


def test_frames_the_command_prints_are_read_as_the_protocol_says(tmp_path):
    _read(tmp_path, "F 5 out/output.json", b"[1,2]\nE\n")
    assert (tmp_path / "out" / "output.json").read_bytes() == b"[1,2]"
    _read(tmp_path, "F 2 out/vars/KEY.json", b"42\nE\n")
    assert (tmp_path / "out" / "vars" / "KEY.json").read_bytes() == b"42"
    _read(tmp_path, "F 5000 out/output.txt", b"\nE\n")  # over the limit: its size only
    assert (tmp_path / "out" / "output.txt").stat().st_size == 5000
    _read(tmp_path, "F 3 out/notes.json", b"abc\nE\n")  # not the protocol's: dropped
    assert not (tmp_path / "out" / "notes.json").exists()
    _read(tmp_path, "N out/vars", b"")  # not a protocol name: ignored


@pytest.mark.parametrize(
    "header, body, error",
    [
        ("F 10 out/output.json", b"short\nE\n", "changed while it was read"),
        ("F 2 out/output.json", b"abcdef\nE\n", "changed while it was read"),
        ("L out/output.json", b"", "is a link"),
        ("N out/condition", b"", "is not a regular file"),
        ("U out/vars/A.json", b"", "is not readable"),
        ("R out/vars", b"", "was replaced"),
        ("S out/output.json", b"", "stat failed"),
    ],
)
def test_what_the_server_reports_of_out_is_a_clear_error(tmp_path, header, body, error):
    with pytest.raises((OSError, HelperProtocolError), match=error):
        _read(tmp_path, header, body)
