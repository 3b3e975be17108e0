"""Injection: hostile text pushed through every entry point executes nothing and writes
nothing outside a run's directory.

Each payload (shell metacharacters, newlines, `$()`, backticks, quote breaks, `../`,
option-looking text, Jinja escapes, NUL) would create its own marker file if anything ever
ran it as a command. It goes through:

- event names, env names, variable keys, event `servers`, and every CLI argument that
  names something (`run`, `trigger`, `pause`, `resume`, `delete`, `logs`, `server add|test`,
  `var set|get|delete`): refused with a clear error and exit 2, never a traceback;
- env values and variable values: they reach bash and python scripts in Docker and over
  SSH byte-for-byte, and bash writes them back unchanged; a variable saved through
  Prefect's API with a `../` key (bypassing the model) never becomes a file anywhere;
- `cronium server add` host / user / port / host key: data for the socket and the SSH
  handshake (no ssh command line, so no `-oProxyCommand`): a clear failure;
- message templates: hostile data renders literally into a webhook's subject and body;
  sandbox escapes and file includes fail their action (not the run) and send nothing.

Afterwards no marker exists on this machine (which is also the SSH server), in the test
user's home, in the staging root, or in any container's /tmp (each script looks itself).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import pwd
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock

from cronium_prefect import parse_text
from cronium_prefect.blocks.variable import CroniumVariable
from cronium_prefect.blocks.variable_store import get_variable_store
from cronium_prefect.errors import InvalidEvent
from cronium_prefect.flows import cronium_event
from cronium_prefect.names import messages_artifact_key
from cronium_prefect.settings import get_settings
from cronium_prefect.variables import check_key
from tests.cli import cronium
from tests.integration.helpers import record_json
from tests.receivers import HttpReceiver
from tests.sshd import PASSWORD, USER

from .report import report

TOKEN = f"cronium-inject-{uuid.uuid4().hex[:10]}"

# (case, text): MARK becomes /tmp/<TOKEN>-<index>, a file that appears if the text runs.
PAYLOADS = [
    ("command substitution", "$(touch MARK)"),
    ("backticks", "`touch MARK`"),
    ("semicolon", "x; touch MARK"),
    ("pipe", "x | touch MARK"),
    ("and-list", "x && touch MARK"),
    ("redirect", "x > MARK"),
    ("newline", "x\ntouch MARK"),
    ("carriage return", "x\r\ntouch MARK"),
    ("single quote break", "'; touch MARK; '"),
    ("double quote break", '"; touch MARK; "'),
    ("quoted substitution", "'\"$(touch MARK)\"'"),
    ("parameter expansion", "${HOME:+$(touch MARK)} $PATH"),
    ("path traversal", "../../../../../../../../..MARK"),
    ("option injection", "-oProxyCommand=touch MARK"),
    ("jinja expression", "{{ ''.__class__.__mro__ }}{{ 7*7 }}"),
    ("jinja raw block", "{% raw %}$(touch MARK){% endraw %}"),
    ("receiver placeholders", "{{subject}} {{body}} {{name}}"),
    ("glob and tilde", "~/* ?* [a-z]*"),
    ("escapes and formats", "a\\b\\\\n \\x00 %s %n %%"),
    ("unicode", "naïve ☃ \u202e\u2028"),
]
TEXTS = [text.replace("MARK", f"/tmp/{TOKEN}-{i}") for i, (_, text) in enumerate(PAYLOADS)]
NUL_TEXT = "before\0after"
# A variable key that, joined onto any directory, points at /tmp/<TOKEN>-traversal.
TRAVERSAL_KEY = "../" * 16 + f"tmp/{TOKEN}-traversal"

# Sandbox escapes and template includes: each must fail its action and send nothing.
TEMPLATE_ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    f"{{{{ cycler.__init__.__globals__.os.popen('touch /tmp/{TOKEN}-jinja').read() }}}}",
    f"{{{{ lipsum.__globals__['os'].popen('touch /tmp/{TOKEN}-jinja') }}}}",
    "{{ ''|attr('__class__') }}",
    "{{ '{0.__class__}'.format(output) }}",
    "{% include '../../../../etc/passwd' %}",
    "{% set x = output.__setitem__('env', 1) %}",
    "{{ self.__init__.__globals__ }}",
]


def markers() -> list[str]:
    """Every path named after this session's token where a stray write could land."""
    home = Path(pwd.getpwnam(USER).pw_dir)
    shallow = [Path("/tmp"), Path("/var/tmp"), Path.cwd(), home]
    deep = [home / ".cronium", Path(os.environ["CRONIUM_HOME"]), get_settings().staging_root]
    found = [str(p) for root in shallow if root.is_dir() for p in root.iterdir() if TOKEN in p.name]
    for root in deep:
        for folder, dirs, files in os.walk(root):
            found += [os.path.join(folder, n) for n in dirs + files if TOKEN in n]
    return sorted(set(found))


@pytest.fixture(scope="module", autouse=True)
def _remove_markers_afterwards():
    yield
    for path in markers():  # only after a failure: leave no marker for anyone to trip on
        with contextlib.suppress(OSError):
            Path(path).unlink()


def cli_in_process(*args: str, stdin: str = "") -> tuple[int | str, str, str]:
    """(exit code, stdout, stderr) of `cronium ARGS` exactly as `main()` runs it, in this
    process (a subprocess costs 2 s of startup each); an exception that escapes `main()`,
    i.e. a traceback for the user, is returned in place of the code."""
    from cronium_prefect.cli import main

    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.object(sys, "argv", ["cronium", *args]),
        mock.patch.object(sys, "stdin", io.StringIO(stdin)),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main()
            code: int | str = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 1
        except Exception as exc:
            code = f"traceback: {type(exc).__name__}: {exc}"
    return code, out.getvalue(), err.getvalue()


def refused(definition: dict) -> bool:
    try:
        parse_text(json.dumps(definition))
    except InvalidEvent:
        return True
    return False


def test_hostile_names_keys_and_server_fields_are_refused_clearly(sshd, ssh_server, tmp_path):
    started = time.monotonic()
    hostile = [*TEXTS, "..", ".", NUL_TEXT]
    base = {"type": "bash", "script": "true"}
    remote = {**base, "name": "inject-remote", "run_location": "remote"}
    definitions = {
        "event name": [{**base, "name": t} for t in [*hostile, "inject-ok\n"]],
        "env name": [{**base, "name": "inject-env", "env": {t: "x"}} for t in [*hostile, "OK\n"]],
        "env value with NUL": [{**base, "name": "inject-nul", "env": {"E": NUL_TEXT}}],
        "server of an event": [{**remote, "servers": [t]} for t in [*hostile, "inject-ssh\n"]],
    }
    accepted = {k: [d for d in ds if not refused(d)] for k, ds in definitions.items()}
    key_accepted = []
    for key in [*hostile, TRAVERSAL_KEY, "GOOD_KEY\n"]:
        with contextlib.suppress(ValueError):
            key_accepted.append(check_key(key))

    # A definition file of hostile names: `apply` (a real process, run meanwhile) and `run`.
    hostile_file = tmp_path / "events" / "hostile.yaml"
    hostile_file.parent.mkdir()
    hostile_file.write_text("\n---\n".join(json.dumps({**base, "name": t}) for t in TEXTS))
    with ThreadPoolExecutor(1) as pool:
        applying = pool.submit(cronium, "apply", str(hostile_file.parent))
        ssh_server("inject-ssh")
        cases = _cli_cases(sshd, hostile_file)
        outcomes = [(args, want, *cli_in_process(*args, stdin=i)) for args, i, want in cases]
        applied = applying.result()
    wrong = [
        (args, want, code, err[-300:]) for args, want, code, _, err in outcomes if code != want
    ]
    unclear = [
        (args, err[-300:])
        for args, _, code, _, err in outcomes
        if code and not any(word in err for word in ("error:", "Error", "Usage:"))
    ]
    listed = json.loads(cli_in_process("server", "list", "--json")[1])
    description = {s["name"]: s["description"] for s in listed}.get("inject-described")
    found = markers()
    report(
        "injection_refusals",
        {
            "definitions_checked": sum(map(len, definitions.values())),
            "definitions_accepted": {k: len(v) for k, v in accepted.items()},
            "variable_keys_accepted": len(key_accepted),
            "cli_invocations": len(outcomes) + 2,
            "cli_wrong_exit": len(wrong),
            "cli_unclear": len(unclear),
            "markers_found": found,
            "duration_s": round(time.monotonic() - started, 1),
        },
    )
    assert accepted == {k: [] for k in definitions}, accepted
    assert key_accepted == []
    assert applied.returncode == 2 and "Traceback" not in applied.stderr, applied.stderr
    assert applied.stderr.count("name") >= len(TEXTS), applied.stderr
    assert wrong == [] and unclear == [], (wrong, unclear)
    assert description == TEXTS[0]
    assert found == []


def _cli_cases(sshd, hostile_file: Path) -> list[tuple[list[str], str, int]]:
    """(arguments, stdin, expected exit code) for every command that takes a name, a key
    or a server field; a real sshd answers `server add`."""
    pin = ["--host-key", sshd.host_key_line]
    reach = ["--host", "127.0.0.1", "--port", str(sshd.port)]
    add = ["server", "add", "inject-hostile", "--password-stdin"]
    password = PASSWORD + "\n"
    cases = [(["run", str(hostile_file)], "", 2), (["var", "set", "INJECT_KEY\n", "1"], "", 2)]
    for name in [TEXTS[0], TEXTS[1], TEXTS[2], TEXTS[6], TEXTS[12], "..", "inject-ssh\n"]:
        for command in ("run", "trigger", "pause", "resume", "delete", "logs"):
            cases.append(([command, name], "", 2))
        for command in (["server", "test"], ["var", "get"], ["var", "delete"]):
            cases.append(([*command, name], "", 2))
        cases.append((["var", "set", name, "1"], "", 2))
        good_server = [*reach, "--user", USER, "--password-stdin", *pin]
        cases.append((["server", "add", name, *good_server], password, 2))
    for text in (TEXTS[0], TEXTS[2], TEXTS[6], TEXTS[13], f"127.0.0.1 -oProxyCommand={TEXTS[0]}"):
        cases.append(([*add, "--host", text, "--user", USER, *pin], password, 1))  # no such host
        cases.append(([*add, *reach, "--user", text, *pin], password, 1))  # authentication fails
    for port in (f"22; touch /tmp/{TOKEN}-port", "0", "70000"):
        at_port = ["--host", "127.0.0.1", "--port", port]
        cases.append(([*add, *at_port, "--user", USER, *pin], password, 2))
    cases.append(([*add, *reach, "--user", USER, "--host-key", TEXTS[0]], password, 2))
    # A description is plain data: saved and listed as given.
    described = ["server", "add", "inject-described", "--password-stdin", *reach, "--user", USER]
    cases.append(([*described, *pin, "--description", TEXTS[0]], password, 0))
    return cases


def _python_source(env_keys: list[str], var_keys: list[str], emit: str) -> str:
    """Reads the env and the variables through the Python helper; the line `emit` hands
    the result back (as output, or printed)."""
    return (
        "import glob, json, os, cronium\n"
        f"result = {{'env': {{k: os.environ.get(k) for k in {env_keys!r}}},\n"
        f"          'vars': {{k: cronium.getVariable(k) for k in {var_keys!r}}},\n"
        f"          'markers': glob.glob('/tmp/{TOKEN}*')}}\n"
        f"{emit}\n"
    )


def _bash_script(
    env_keys: list[str], bash_vars: list[str], python_vars: list[str], back: str
) -> str:
    """Reports each env and variable value base64-encoded (bash has no JSON), writes them
    all back through the helper as the variable `back`, lists any marker in its /tmp, and
    reports what the Python helper reads in the same place."""
    python = _python_source(env_keys, python_vars, "print(json.dumps(result))")
    return (
        'b64() { printf %s "$1" | base64 -w0; }\nreport="" back=""\n'
        f"for k in {' '.join(env_keys)}; do\n"
        '  report+="env $k $(b64 "${!k}")"$\'\\n\'\ndone\n'
        f"for k in {' '.join(bash_vars)}; do\n"
        '  value=$(cronium_getVariable "$k")\n'
        '  report+="var $k $(b64 "$value")"$\'\\n\'\n'
        '  back+="${back:+$SEPARATOR}$value"\ndone\n'
        f'cronium_setVariable {back} "$back"\n'
        f"report+=\"python $(python3 - <<'PY' | base64 -w0\n{python}PY\n)\"$'\\n'\n"
        f"report+=\"markers $(ls -d /tmp/{TOKEN}* 2>/dev/null | tr '\\n' ' ')\"\n"
        'cronium_output "$report"\n'
    )


def _parse_bash_report(text: str) -> tuple[dict, dict, dict, list[str]]:
    """(env, variables, what python read, markers) from _bash_script's report."""
    env, variables, python, found = {}, {}, {}, []
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "markers":
            found = rest.split()
        elif kind == "python":
            python = json.loads(base64.b64decode(rest))
        else:
            key, _, encoded = rest.partition(" ")
            (env if kind == "env" else variables)[key] = base64.b64decode(encoded).decode()
    return env, variables, python, found


def _message(message: str, subject: str | None = None) -> dict:
    spec = {"block": "inject-hook", "message": message} | ({"subject": subject} if subject else {})
    return {"on": "success", "send_message": spec}


async def _run(definition: dict) -> dict:
    (event,) = parse_text(json.dumps(definition))
    state = await cronium_event(event=event, return_state=True)
    result = await state.result(raise_on_failure=False)
    return record_json(result)


@pytest.fixture
def receiver():
    server = HttpReceiver().start()
    yield server
    server.stop()


def test_hostile_values_arrive_as_data_and_templates_stay_text(stack, ssh_server, receiver):
    from tests.integration.test_messages import _artifact

    started = time.monotonic()
    store = get_variable_store()
    ssh_server("inject-ssh")
    separator = "\n--\n"
    env = {f"E{i}": text for i, text in enumerate(TEXTS)}
    variables = {f"INJECT_{i}": text for i, text in enumerate(TEXTS)}
    structured = {"INJECT_NESTED": {"list": TEXTS, TEXTS[0]: TEXTS[1]}, "INJECT_NUL": NUL_TEXT}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: store.set(*item), {**variables, **structured}.items()))
    # Saved as Prefect's API or UI would save it: the block's validators never run.
    CroniumVariable.model_construct(
        key=TRAVERSAL_KEY, owner=None, secret=False, value_json='"pwned"', secret_json=None
    ).save(f"global--{TOKEN}", overwrite=True, _sync=True)
    CustomWebhookNotificationBlock(
        name="inject-hook",
        url=receiver.url("/hook"),
        json_data={"subject": "{{subject}}", "text": "{{body}}"},
    ).save("inject-hook", overwrite=True)

    literal = separator.join(f"{{{{ output.env.{key} }}}}" for key in env)
    raw = f"{{% raw %}}{{{{ output }}}} $(touch /tmp/{TOKEN}-raw){{% endraw %}}"
    actions = [_message(literal, "{{ var.INJECT_6 }}"), _message(raw)]
    actions += [_message(escape) for escape in TEMPLATE_ESCAPES]
    bash_vars = sorted(variables, key=lambda k: int(k[7:])) + ["INJECT_NESTED"]  # no NUL in bash
    python_vars = sorted(variables) + sorted(structured)
    keys = sorted(env)
    events = {
        "docker-bash": {"script": _bash_script(keys, bash_vars, python_vars, "BACK_DOCKER")},
        "ssh-bash": {"script": _bash_script(keys, bash_vars, python_vars, "BACK_SSH")},
        "docker-python": {
            "script": _python_source(keys, python_vars, "cronium.output(result)"),
            "actions": actions,
        },
    }
    remote = {"run_location": "remote", "servers": ["inject-ssh"]}
    definitions = {
        name: {
            "name": f"inject-{name}",
            "type": name.split("-")[1],
            "env": {**env, "SEPARATOR": separator},
            "description": TEXTS[0],
            "tags": TEXTS[:5],
            **(remote if name.startswith("ssh") else {}),
            **spec,
        }
        for name, spec in events.items()
    }

    async def everything() -> list[dict]:
        return await asyncio.gather(*(_run(d) for d in definitions.values()))

    try:
        records = dict(zip(definitions, asyncio.run(everything()), strict=True))
    finally:
        _delete_block("cronium-variable", f"global--{TOKEN}")
    errors = {name: r["error"] for name, r in records.items() if r["status"] != "SUCCESS"}
    assert errors == {}, errors

    expected_vars = {**variables, **structured}
    seen, found_in_scripts = {}, []
    for name, record in records.items():
        read = {"python": record["output"]}
        if "bash" in name:
            got_env, got_vars, read["python"], found = _parse_bash_report(record["output"])
            got_vars["INJECT_NESTED"] = json.loads(got_vars["INJECT_NESTED"])  # JSON in bash
            read["bash"] = {"env": got_env, "vars": got_vars, "markers": found}
        for helper, got in read.items():
            seen[f"{name} {helper}"] = {
                "env": got["env"] == env,
                "vars": got["vars"] == {k: expected_vars[k] for k in got["vars"]},
                "vars_read": len(got["vars"]),
            }
            found_in_scripts += got["markers"]
    stored = store.visible(None).values
    nested_text = json.dumps(structured["INJECT_NESTED"])
    expected_back = separator.join([*TEXTS, nested_text])
    written_back = {key: stored.get(key) == expected_back for key in ("BACK_DOCKER", "BACK_SSH")}
    requests = [r.json() for r in receiver.requests]
    deliveries = _artifact(messages_artifact_key("inject-docker-python"))
    refusals = [d["error"] for d in deliveries[2:]]
    found = markers()
    report(
        "injection_runs",
        {
            "payloads": len(TEXTS) + 1,
            "runs": {name: r["status"] for name, r in records.items()},
            "values_intact": seen,
            "written_back_intact": written_back,
            "messages_sent": len(requests),
            "template_escapes_refused": sum(d["status"] == "failed" for d in deliveries[2:]),
            "markers_found": found + found_in_scripts,
            "duration_s": round(time.monotonic() - started, 1),
        },
    )
    assert all(v["env"] and v["vars"] for v in seen.values()), seen
    assert {v["vars_read"] for k, v in seen.items() if "python" in k} == {len(python_vars)}
    assert len(seen) == 5, seen
    assert all(written_back.values()), (written_back, stored.get("BACK_SSH"))
    assert requests[0] == {"subject": TEXTS[6], "text": separator.join(TEXTS)}
    assert requests[1]["text"] == f"{{{{ output }}}} $(touch /tmp/{TOKEN}-raw)"
    assert len(requests) == 2 and [d["status"] for d in deliveries[:2]] == ["sent", "sent"]
    assert len(refusals) == len(TEMPLATE_ESCAPES), deliveries
    assert all(("refused by the sandbox" in e or "no loader" in e) for e in refusals), refusals
    assert found == [] and found_in_scripts == []


def _delete_block(slug: str, name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client, contextlib.suppress(ObjectNotFound):
        document = client.read_block_document_by_name(name, block_type_slug=slug)
        client.delete_block_document(document.id)
