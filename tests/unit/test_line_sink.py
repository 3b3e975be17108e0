"""Lines reach the callback whole, in order, masked, and never dropped."""

import pytest

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


SECRET = "s3cr3t-t0ken-value"


@pytest.mark.parametrize("before_cut", [1, 2, len(SECRET) // 2, len(SECRET) - 1])
@pytest.mark.parametrize("chunked", [False, True], ids=["one chunk", "byte by byte tail"])
def test_a_secret_across_the_line_cut_is_masked_whole(before_cut, chunked):
    sink, lines = _sink(secrets=[SECRET])
    line = b"x" * (MAX_LINE_BYTES - before_cut) + SECRET.encode() + b"y" * 100 + b"\n"
    if chunked:
        head, tail = line[: MAX_LINE_BYTES - 50], line[MAX_LINE_BYTES - 50 :]
        sink.feed("stdout", head)
        for i in range(len(tail)):
            sink.feed("stdout", tail[i : i + 1])
    else:
        sink.feed("stdout", line)
    text = "".join(piece.removesuffix(" [line continues]") for _, piece in lines)
    assert SECRET not in text and text.count("***") == 1
    assert not any(SECRET[:6] in piece or SECRET[-6:] in piece for _, piece in lines)
    assert text.replace("***", "") == "x" * (MAX_LINE_BYTES - before_cut) + "y" * 100


def test_two_secrets_meeting_at_the_cut_are_both_masked():
    sink, lines = _sink(secrets=["first-secret", "second-secret"])
    sink.feed(
        "stdout",
        b"x" * (MAX_LINE_BYTES - 20) + b"first-secretsecond-secret" + b"z" * 10 + b"\n",
    )
    text = "".join(piece for _, piece in lines)
    assert "secret" not in text.replace("***", "")


@pytest.mark.parametrize(
    "shown",
    [
        "p%40ss%2Fw0rd%20%26more",  # URL-encoded (a query string)
        "p%40ss%2Fw0rd+%26more",  # form-encoded
        "cEBzcy93MHJkICZtb3Jl",  # base64 (a Basic auth header)
    ],
)
def test_common_encodings_of_a_secret_are_masked(shown):
    from cronium_prefect.variables import Visible

    visible = Visible(values={"PW": "p@ss/w0rd &more"}, secret_keys={"PW"})
    sink, lines = _sink(secrets=visible.secret_values)
    sink.feed("stdout", f"got {shown} here\n".encode())
    assert lines == [("stdout", "got *** here")]


@pytest.mark.parametrize(
    "shown",
    ["az8/Pj5rPz8+Pg==", "az8_Pj5rPz8-Pg==", "az8_Pj5rPz8-Pg"],
    ids=["base64 with + and /", "urlsafe base64", "urlsafe base64 unpadded"],
)
def test_both_base64_alphabets_are_masked(shown):
    from cronium_prefect.variables import Visible

    visible = Visible(values={"PW": "k??>>k??>>"}, secret_keys={"PW"})
    sink, lines = _sink(secrets=visible.secret_values)
    sink.feed("stdout", f"token={shown};\n".encode())
    assert lines == [("stdout", "token=***;")]


def test_a_json_escaped_secret_is_masked():
    from cronium_prefect.variables import Visible

    visible = Visible(values={"PW": 'quo"te\\back\nline'}, secret_keys={"PW"})
    sink, lines = _sink(secrets=visible.secret_values)
    sink.feed("stdout", b'{"pw": "quo\\"te\\\\back\\nline"}\n')
    assert lines == [("stdout", '{"pw": "***"}')]
