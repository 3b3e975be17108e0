"""Lines reach the callback whole, in order, masked, and never dropped."""

from cronium_prefect.executors.base import MAX_LINE_BYTES, LineSink


def _sink(secrets=()):
    lines = []
    return LineSink(lambda stream, line: lines.append((stream, line)), secrets), lines


def test_chunks_are_split_into_lines_in_arrival_order():
    sink, lines = _sink()
    sink.feed("stdout", b"one\ntw")
    sink.feed("stderr", b"err\n")
    sink.feed("stdout", b"o\nthree")
    sink.close()
    assert lines == [("stdout", "one"), ("stderr", "err"), ("stdout", "two"), ("stdout", "three")]
    assert sink.count == 4


def test_secrets_are_masked_even_inside_longer_secrets():
    sink, lines = _sink(secrets=["hunter2", "hunter2-extended"])
    sink.feed("stdout", b"pw=hunter2-extended and hunter2\n")
    assert lines == [("stdout", "pw=*** and ***")]


def test_long_lines_are_cut_into_marked_pieces_not_dropped():
    sink, lines = _sink()
    sink.feed("stdout", b"x" * (MAX_LINE_BYTES * 2 + 10) + b"\n")
    assert [len(line) for _, line in lines] == [
        MAX_LINE_BYTES + len(" [line continues]"),
        MAX_LINE_BYTES + len(" [line continues]"),
        10,
    ]


def test_invalid_utf8_is_replaced_visibly_and_carriage_returns_trimmed():
    sink, lines = _sink()
    sink.feed("stdout", b"bad \xff byte\r\n")
    assert lines == [("stdout", "bad \ufffd byte")]


def test_multi_line_and_structured_secrets_are_masked_by_their_parts():
    from cronium_prefect.variables import Visible

    visible = Visible(
        values={
            "PEM": "-----BEGIN KEY-----\nAAAAsecretline\n-----END KEY-----",
            "CREDS": {"user": "svc", "pass": "p4ssw0rd!"},
            "PLAIN": "public",
        },
        secret_keys={"PEM", "CREDS"},
    )
    sink, lines = _sink(secrets=visible.secret_values)
    sink.feed("stdout", b"AAAAsecretline\npass=p4ssw0rd! user=svc\nvalue public\n")
    assert lines == [("stdout", "***"), ("stdout", "pass=*** user=svc"), ("stdout", "value public")]
