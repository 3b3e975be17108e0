"""Fuzzed requests to Cronium's HTTP service: malformed request lines and headers, bodies
of every shape, encodings, huge values, sent as raw bytes over a socket (no client library
smoothing them). None may answer 500 or show a traceback; a run starts exactly for each
202 (a fuzzed body may well be valid JSON); the service's log holds no secret and no
body; the service keeps answering."""

from __future__ import annotations

import json
import random
import socket
import time
import uuid

import pytest

from cronium_prefect.webhook import github_sign, sign
from tests.integration.front_door import FrontDoor, cli, save_secret

from .report import report

TOKEN = "fz-" + uuid.uuid4().hex
SIGNING = "fzs-" + uuid.uuid4().hex
MARKER = "FUZZBODY" + uuid.uuid4().hex[:8]
EVENTS = """
name: fz-token
type: bash
status: active
pool: fz-nobody
script: "true"
webhook: {secret: fz-token}
---
name: fz-hmac
type: bash
status: active
pool: fz-nobody
script: "true"
webhook: {auth: hmac, secret: fz-signing}
---
name: fz-github
type: bash
status: active
pool: fz-nobody
script: "true"
webhook: {auth: github, secret: fz-signing}
"""
ALLOWED = {202, 400, 401, 404, 405, 411, 413, 414, 415, 422, 429, 431}


@pytest.fixture(scope="module")
def door(prefect_api, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-door")
    save_secret("fz-token", TOKEN)
    save_secret("fz-signing", SIGNING)
    (folder / "events.yaml").write_text(EVENTS)
    assert cli("apply", str(folder / "events.yaml")).returncode == 0
    service = FrontDoor(folder)
    yield service
    service.stop()


def raw(port: int, data: bytes, timeout: float) -> bytes:
    """Send bytes as they are; what came back: one whole answer, or what came until the server
    closed (b"": it closed without an answer) or `timeout` passed (b"": it kept waiting for
    bytes a request promised and never sent)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        try:
            conn.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it stopped reading (a request line or header over the limit): see below
        answer = b""
        while not _whole(answer):
            try:
                chunk = conn.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            answer += chunk
    return answer


def _whole(answer: bytes) -> bool:
    """Whether `answer` holds a head and the body its Content-Length promises (an answer on a
    kept-alive connection ends there, not with a close)."""
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def request(path: bytes, headers: list[bytes], body: bytes, method: bytes = b"POST") -> bytes:
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    return b"\r\n".join([*lines, *headers, b"", b""]) + body


def _cases(rng: random.Random) -> list[tuple[str, bytes]]:
    """(what, raw request) pairs: at least 200, each family several times."""
    json_type = b"Content-Type: application/json"
    bearer = b"Authorization: Bearer " + TOKEN.encode()
    good = json.dumps({"secret-body": MARKER}).encode()
    cases: list[tuple[str, bytes]] = []

    def add(what: str, path: bytes, headers: list[bytes], body: bytes, method=b"POST") -> None:
        length = (
            [b"Content-Length: %d" % len(body)]
            if body
            and not any(
                h.lower().startswith((b"content-length", b"transfer-encoding")) for h in headers
            )
            else []
        )
        cases.append((what, request(path, [*headers, *length], body, method)))

    # Bodies of every shape, authenticated (they reach the parser).
    bodies = [
        b"{",
        b"}",
        b"[1,]",
        b"nul",
        b"\x00\x01\x02",
        b"\xff" * 50,
        b'{"a": 1e999999}',
        b"1" * 5000,  # over Python's integer digit limit
        b'{"a": "\\ud800"}',
        b'{"a": "\\u00"}',
        b"[" * 70 + b"]" * 70,
        b"[" * 100_000,
        b'{"a": ' * 10_000,
        b'"' + b"\\" * 9999 + b'"',
        b"\xef\xbb\xbf{}",  # a byte-order mark
        b"{}" * 3,
        b"NaN",
        b"-Infinity",
        b'{"__proto__": {"x": 1}}' + b" " * 10,
        b"\r\n\r\n",
    ]
    for body in bodies:
        add(f"body {body[:12]!r}", b"/hooks/fz-token", [json_type, bearer], body)
        add(
            f"body {body[:12]!r}, text/plain",
            b"/hooks/fz-token",
            [bearer, b"Content-Type: text/plain"],
            body,
        )
    for _ in range(30):  # random bytes and random JSON-ish text
        size = rng.choice([1, 10, 100, 1000, 10_000])
        blob = bytes(rng.getrandbits(8) for _ in range(size))
        add("random bytes", b"/hooks/fz-token", [json_type, bearer], blob)
        text = "".join(
            rng.choice('{}[]",:0123456789.eE+-truefalsnul \\"\u00e9') for _ in range(size)
        )
        add("random json-ish", b"/hooks/fz-token", [json_type, bearer], text.encode())
    # Headers: malformed, huge, repeated, wrong encodings.
    header_sets = [
        [b"Authorization: Bearer", json_type],
        [b"Authorization: " + b"A" * 20_000, json_type],
        [b"Authorization: Bearer " + "\u00e9t\u00e9".encode(), json_type],
        [b"Authorization: Bearer \xff\xfe", json_type],
        [bearer, bearer, json_type],
        [b"Content-Type: " + b"x" * 10_000, bearer],
        [b"Content-Type: application/json; charset=latin-1", bearer],
        [b"Content-Type: application/json; charset=utf-16", bearer],
        [b"Content-Encoding: gzip", json_type, bearer],
        [b"Content-Length: -1", json_type, bearer],
        [b"Content-Length: 99999999999999999999", json_type, bearer],
        [b"Content-Length: abc", json_type, bearer],
        [b"Content-Length: 5", b"Content-Length: 6", json_type, bearer],
        [b"Transfer-Encoding: chunked", json_type, bearer],
        [b"Transfer-Encoding: gzip, chunked", json_type, bearer],
        [b"X-Cronium-Timestamp: " + b"9" * 1000, b"X-Cronium-Signature: sha256=zz", json_type],
        [b"X-Cronium-Timestamp: -5", b"X-Cronium-Signature: sha256=", json_type],
        [b"X-Cronium-Timestamp: \xff", b"X-Cronium-Signature: \xff", json_type],
        [b"X-Hub-Signature-256: " + b"f" * 5000, json_type],
        [b"X-Hub-Signature-256: sha256=\x00", json_type],
        [b"Bad Header Name: x", bearer],
        [b"NoColon", bearer],
        [b": empty-name", bearer],
        [b"X-Forwarded-For: 10.0.0.1", bearer, json_type],
    ]
    for headers in header_sets:
        for hook in (b"/hooks/fz-token", b"/hooks/fz-hmac", b"/hooks/fz-github"):
            add(f"headers {headers[0][:30]!r} on {hook!r}", hook, headers, good)
    # Paths and methods.
    paths = [
        b"/hooks/" + b"a" * 10_000,
        b"/hooks/" + b"a" * 200,
        b"/hooks/%00",
        b"/hooks/..%2f..%2fapi",
        b"/hooks/fz-token/../../runs/x",
        b"/hooks/" + "\u00e9v\u00e9nement".encode(),
        b"/hooks/\xff",
        b"/hooks/",
        b"/hooks",
        b"/runs/" + b"9" * 5000,
        b"/runs/%27%20OR%201=1",
        b"/hooks/fz-token?x=" + b"y" * 8000,
        b"*",
        b"http://evil.example/hooks/fz-token",
    ]
    for path in paths:
        add(f"path {path[:30]!r}", path, [json_type, bearer], good)
        add(f"GET {path[:30]!r}", path, [bearer], b"", b"GET")
    for method in (b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE", b"FOO", b"G\x00ET"):
        add(f"method {method!r}", b"/hooks/fz-token", [json_type, bearer], good, method)
    # Signatures: right secret over other bytes, stale and future times, GitHub's over a
    # different body; never a run. The window is 300 s either way. These are sent well
    # after `now`: a past stamp only gets older, but a future one comes closer (a stamp
    # 301 s ahead was inside the window by then: a run), so the future ones are far out.
    now = int(time.time())
    for delta in (-10_000, -301, 3600, 10**9):
        stamp = str(now + delta).encode()
        signature = sign(SIGNING, stamp.decode(), good).encode()
        add(
            f"stale hmac {delta}",
            b"/hooks/fz-hmac",
            [json_type, b"X-Cronium-Timestamp: " + stamp, b"X-Cronium-Signature: " + signature],
            good,
        )
    add(
        "github over other bytes",
        b"/hooks/fz-github",
        [json_type, b"X-Hub-Signature-256: " + github_sign(SIGNING, b"{}").encode()],
        good,
    )
    # Garbage instead of HTTP.
    for junk in [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET\r\n\r\n",
        b"\r\n" * 100,
        b"POST /hooks/fz-token HTTP/9.9\r\n\r\n",
        b"POST /hooks/fz-token\r\n\r\n",
    ]:
        cases.append((f"junk {junk[:10]!r}", junk))
    return cases


def _status(answer: bytes) -> int | None:
    if not answer.startswith(b"HTTP/1.1 "):
        return None  # closed without an answer: malformed beyond HTTP (uvicorn's h11 drops it)
    return int(answer[9:12])


def test_fuzzed_requests_never_give_a_500_or_a_traceback_and_runs_match_202s(door):
    from tests.integration.test_webhooks import runs_of

    before = {e: len(runs_of(e)) for e in ("fz-token", "fz-hmac", "fz-github")}
    cases = _cases(random.Random(16))
    assert len(cases) >= 200, len(cases)
    statuses: dict[str, int] = {}
    bad, accepted = [], []
    for what, data in cases:
        # A "chunked" body that is not chunked never ends: the server waits for the rest. Any
        # other request gets a long wait, as a 202 waits on Prefect (over 5 s in a busy CI).
        never_ends = b"\r\nTransfer-Encoding: chunked\r\n" in data
        answer = raw(door.port, data, timeout=5 if never_ends else 60)
        status = _status(answer)
        if status == 202:
            accepted.append(json.loads(answer.split(b"\r\n\r\n", 1)[1])["run_id"])
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status is not None and status not in ALLOWED:
            bad.append((what, status, answer[:300]))
        if b"Traceback" in answer or MARKER.encode() in answer or TOKEN.encode() in answer:
            bad.append((what, "leaked", answer[:300]))
    assert bad == [], bad[:5]
    # Callers that hang up in the middle of their body (a traceback in the log, before).
    for sent in (0, 1, 100, 5000):
        with socket.create_connection(("127.0.0.1", door.port), timeout=5) as conn:
            conn.sendall(
                request(
                    b"/hooks/fz-token",
                    [b"Authorization: Bearer " + TOKEN.encode(), b"Content-Length: 10000"],
                    b"[" * sent,
                )
            )
    time.sleep(1)
    assert door.http.get("/health").status_code == 200  # still serving
    after = {e: len(runs_of(e)) for e in before}
    assert sum(after.values()) - sum(before.values()) == len(accepted)  # one run per 202
    # No fuzzed request carries a valid signature (a stale one was let in, once).
    assert (after["fz-hmac"], after["fz-github"]) == (before["fz-hmac"], before["fz-github"])
    made = {str(r.id) for e in before for r in runs_of(e)}
    assert set(accepted) <= made
    log = door.log()
    assert "Traceback" not in log and "Exception" not in log
    for secret in (TOKEN, SIGNING, MARKER):
        assert secret not in log
    report("front_door_fuzz", {"requests": len(cases), "statuses": statuses})
