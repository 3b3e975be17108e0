"""Every invalid-definition rule of SPEC §2 gives a clear error: field, value, file:line."""

from __future__ import annotations

import textwrap

import pytest

from cronium_prefect import Event, InvalidEvent, load_paths, parse_text
from cronium_prefect.loader import load_file
from tests.cli import cronium

VALID = """\
name: ok
type: bash
script: echo hi
"""

# (case id, YAML document, fragments the error message must contain)
INVALID = [
    ("missing name", "type: bash\nscript: x\n", ["name", "Field required"]),
    ("uppercase name", "name: Nightly\ntype: bash\nscript: x\n", ["f.yaml:1", "name", "'Nightly'"]),
    ("name too long", f"name: {'a' * 101}\ntype: bash\nscript: x\n", ["name", "1-100"]),
    ("underscore name", "name: a_b\ntype: bash\nscript: x\n", ["name", "'a_b'"]),
    ("long description", f"{VALID}description: {'d' * 501}\n", ["description", "500"]),
    ("unknown type", "name: a\ntype: ruby\nscript: x\n", ["f.yaml:2", "type", "'ruby'"]),
    ("script missing", "name: a\ntype: python\n", ["needs script or script_file"]),
    ("script and file", f"{VALID}script_file: x.sh\n", ["either script or script_file"]),
    (
        "script_file absent",
        "name: a\ntype: bash\nscript_file: nope.sh\n",
        ["nope.sh", "no such file"],
    ),
    ("bad status", f"{VALID}status: running\n", ["f.yaml:4", "status", "'running'"]),
    (
        "bad cron",
        f"{VALID}status: active\nschedule:\n  cron: '61 * * * *'\n",
        ["f.yaml:6", "schedule.cron", "61 * * * *"],
    ),
    ("short cron", f"{VALID}schedule: {{cron: '* * *'}}\n", ["schedule.cron", "* * *"]),
    (
        "cron and interval",
        f"{VALID}schedule: {{cron: '* * * * *', interval: 5m}}\n",
        ["schedule", "either cron or interval"],
    ),
    ("bad interval", f"{VALID}schedule: {{interval: soon}}\n", ["schedule.interval", "'soon'"]),
    ("zero interval", f"{VALID}schedule: {{interval: 0}}\n", ["interval must be at least 1s"]),
    (
        "bad timezone",
        f"{VALID}schedule: {{cron: '0 3 * * *', timezone: Mars/Base}}\n",
        ["schedule.timezone", "Mars/Base"],
    ),
    ("empty schedule", f"{VALID}schedule: {{}}\n", ["needs cron, interval or start_time"]),
    (
        "bad start_time",
        f"{VALID}schedule: {{start_time: tomorrow}}\n",
        ["schedule.start_time", "'tomorrow'"],
    ),
    ("negative max", f"{VALID}max_executions: -1\n", ["max_executions", "-1"]),
    ("bad location", f"{VALID}run_location: cloud\n", ["run_location", "'cloud'"]),
    ("remote no servers", f"{VALID}run_location: remote\n", ["needs at least one server"]),
    ("servers on local", f"{VALID}servers: [web-1]\n", ["servers is only used with"]),
    (
        "image on remote",
        f"{VALID}run_location: remote\nservers: [a]\nimage: x\n",
        ["image is only used with run_location: local"],
    ),
    ("duplicate server", f"{VALID}run_location: remote\nservers: [a, a]\n", ["listed twice: a"]),
    ("lower-case variable", f"{VALID}variables: [token]\n", ["variables[0]", "'token'"]),
    ("pool with a slash", f"{VALID}pool: a/b\n", ["pool", "'a/b'"]),
    ("pool with a space", f"{VALID}pool: 'far pool'\n", ["pool", "'far pool'"]),
    ("pool of Prefect's", f"{VALID}pool: Prefect-agents\n", ["pool", "'prefect'"]),
    ("reserved variable", f"{VALID}variables: [CRONIUM_X]\n", ["variables[0]", "reserved"]),
    ("variable twice", f"{VALID}variables: [A, B, A]\n", ["variables", "listed twice: A"]),
    ("variables not a list", f"{VALID}variables: A\n", ["variables", "list"]),
    (
        "too many variables",
        f"{VALID}variables: [{', '.join(f'V{i}' for i in range(101))}]\n",
        ["variables", "100"],
    ),
    ("bad memory", f"{VALID}resources: {{memory: lots}}\n", ["resources.memory", "'lots'"]),
    ("bad cpus", f"{VALID}resources: {{cpus: 0}}\n", ["resources.cpus", "0"]),
    ("host network", f"{VALID}resources: {{network: host}}\n", ["resources.network", "'host'"]),
    ("bad timeout", f"{VALID}timeout: 5x\n", ["f.yaml:4", "timeout", "'5x'"]),
    ("negative timeout", f"{VALID}timeout: -5\n", ["timeout", "negative"]),
    ("too many retries", f"{VALID}retries: 11\n", ["retries", "11"]),
    ("bad env key", f"{VALID}env: {{'1X': a}}\n", ["env", "'1X'"]),
    ("reserved env key", f"{VALID}env: {{CRONIUM_DIR: a}}\n", ["env", "CRONIUM_ prefix"]),
    ("list env value", f"{VALID}env: {{A: [1]}}\n", ["env.A", "text or numbers"]),
    ("bad priority", f"{VALID}priority: urgent\n", ["priority", "'urgent'"]),
    (
        "http without url",
        "name: a\ntype: http\nhttp: {method: GET}\n",
        ["http.url", "Field required"],
    ),
    (
        "http without method",
        "name: a\ntype: http\nhttp: {url: 'https://x'}\n",
        ["http.method", "Field required"],
    ),
    (
        "http bad scheme",
        "name: a\ntype: http\nhttp: {method: GET, url: 'ftp://x'}\n",
        ["http.url", "ftp://x"],
    ),
    ("http missing section", "name: a\ntype: http\n", ["needs a http section"]),
    (
        "http bad status",
        "name: a\ntype: http\nhttp: {method: GET, url: 'https://x', expect_status: [99]}\n",
        ["http.expect_status[0]", "99"],
    ),
    (
        "script on http",
        "name: a\ntype: http\nscript: x\nhttp: {method: GET, url: 'https://x'}\n",
        ["script is only used by"],
    ),
    ("tool missing section", "name: a\ntype: tool\n", ["needs a tool section"]),
    (
        "tool without block",
        "name: a\ntype: tool\ntool: {message: hi}\n",
        ["tool.block", "Field required"],
    ),
    (
        "unknown key",
        f"{VALID}shedule: {{cron: '* * * * *'}}\n",
        ["f.yaml:4", "shedule", "unknown field", "did you mean 'schedule'"],
    ),
    (
        "unknown nested key",
        f"{VALID}resources: {{memroy: 1g}}\n",
        ["resources.memroy", "did you mean 'memory'"],
    ),
    ("duplicate key", f"{VALID}type: python\n", ["f.yaml:4", "duplicate key 'type'", "line 2"]),
    (
        "action without kind",
        f"{VALID}actions: [{{on: success}}]\n",
        ["actions[0]", "exactly one of send_message or run_event"],
    ),
    (
        "action bad trigger",
        f"{VALID}actions: [{{on: sometimes, run_event: ok}}]\n",
        ["actions[0].on", "'sometimes'"],
    ),
    (
        "action empty all",
        f"{VALID}actions: [{{on: {{all: []}}, run_event: ok}}]\n",
        ["actions[0].on", "non-empty"],
    ),
    (
        "action infinite delay",
        f"{VALID}actions: [{{on: success, run_event: ok, delay: .inf}}]\n",
        ["actions[0].delay", "finite", "inf"],
    ),
    (
        "action nan delay",
        f"{VALID}actions: [{{on: success, run_event: ok, delay: .nan}}]\n",
        ["actions[0].delay", "finite", "nan"],
    ),
    (
        "action huge number delay",
        f"{VALID}actions: [{{on: success, run_event: ok, delay: {'9' * 400}}}]\n",
        ["actions[0].delay", "finite"],
    ),
    (
        "action huge text delay",
        f"{VALID}actions: [{{on: success, run_event: ok, delay: '{'9' * 400}d'}}]\n",
        ["actions[0].delay", "finite"],
    ),
    (
        "run_event delay over 30 days",
        f"{VALID}actions: [{{on: success, run_event: ok, delay: 31d}}]\n",
        ["actions[0].delay", "2592000"],
    ),
    (
        "message delay over an hour",
        f"{VALID}actions: [{{on: success, send_message: {{block: b, message: m}}, delay: 2h}}]\n",
        ["actions[0]", "delay 7200s", "at most 3600s"],
    ),
    (
        "huge integer",
        f"{VALID}max_executions: {'9' * 5000}\n",
        ["f.yaml:4", "max_executions", "more than 4300 digits"],
    ),
    (
        "huge integer in a list",
        f"{VALID}tags: [a, {'7' * 5000}]\n",
        ["f.yaml:4", "tags[1]", "more than 4300 digits"],
    ),
    (
        "huge integer as a key",
        f"{VALID}env:\n  ? {'5' * 5000}\n  : x\n",  # an explicit key: past 1024 characters
        ["f.yaml:5", "more than 4300 digits"],
    ),
    (
        "impossible date",
        f"{VALID}status: active\nschedule: {{interval: 1h, start_time: 2024-02-30}}\n",
        ["f.yaml:5", "day is out of range"],
    ),
    (
        "message delays adding up to over an hour",
        f"{VALID}actions:\n"
        + "  - {on: success, send_message: {block: b, message: m}, delay: 40m}\n" * 2,
        ["delays add up to 4800s", "at most 3600s"],
    ),
    (
        "interval over a year",
        f"{VALID}status: active\nschedule: {{interval: 100000000000}}\n",
        ["schedule.interval", "31622400"],
    ),
    (
        "infinite timeout",
        f"{VALID}timeout: .inf\n",
        ["timeout", "finite"],
    ),
    (
        "action bad delay",
        f"{VALID}actions: [{{on: success, run_event: ok, delay: later}}]\n",
        ["actions[0].delay", "'later'"],
    ),
    (
        "message without text",
        f"{VALID}actions: [{{on: failure, send_message: {{block: b}}}}]\n",
        ["actions[0].send_message.message", "Field required"],
    ),
    ("yaml syntax", "name: a\ntype: [bash\n", ["f.yaml:", "invalid YAML"]),
    ("not a mapping", "- name: a\n", ["must be a mapping", "list"]),
    (
        "alias bomb",
        "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
        ["document too large"],
    ),
    ("deep nesting", "name: " + "[" * 200 + "]" * 200 + "\n", ["nested deeper than"]),
]


@pytest.mark.parametrize(
    "document, fragments", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_definition_names_field_value_and_place(tmp_path, document, fragments):
    path = tmp_path / "f.yaml"
    path.write_text(document)
    with pytest.raises(InvalidEvent) as caught:
        load_paths([path])
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    assert str(path) in message


def test_every_problem_in_a_document_is_reported_at_once():
    with pytest.raises(InvalidEvent) as caught:
        parse_text("name: A\ntype: ruby\ntimeout: never\n", "f.yaml")
    fields = {p.field for p in caught.value.problems}
    assert {"name", "type", "timeout"} <= fields


def test_names_defined_twice_across_files_are_refused(tmp_path):
    (tmp_path / "a.yaml").write_text(VALID)
    (tmp_path / "b.yaml").write_text(VALID)
    with pytest.raises(InvalidEvent, match="name defined twice"):
        load_paths([tmp_path])


def test_run_event_must_name_an_existing_event(tmp_path):
    (tmp_path / "a.yaml").write_text(f"{VALID}actions: [{{on: success, run_event: ghost}}]\n")
    with pytest.raises(InvalidEvent, match="run_event 'ghost' names no event"):
        load_paths([tmp_path])


def test_run_event_cycles_are_refused_with_the_chain(tmp_path):
    (tmp_path / "a.yaml").write_text(
        "name: a\ntype: bash\nscript: x\nactions: [{on: success, run_event: b}]\n---\n"
        "name: b\ntype: bash\nscript: x\nactions: [{on: always, run_event: c}]\n---\n"
        "name: c\ntype: bash\nscript: x\nactions: [{on: failure, run_event: a}]\n"
    )
    with pytest.raises(InvalidEvent, match="cycle: a -> b -> c -> a"):
        load_paths([tmp_path])


def test_non_utf8_file_is_refused_with_its_line(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_bytes(b"name: a\ntype: bash\nscript: \xff\xfe\n")
    with pytest.raises(InvalidEvent, match=r"f.yaml:3: not UTF-8"):
        load_file(path)


def test_json_definitions_and_duplicate_keys(tmp_path):
    path = tmp_path / "e.json"
    path.write_text(
        '[{"name": "j1", "type": "bash", "script": "x"}, {"name": "j2", "type": "node", '
        '"script": "x"}]'
    )
    assert [e.name for e in load_file(path)] == ["j1", "j2"]
    path.write_text('{"name": "j1", "name": "j2", "type": "bash", "script": "x"}')
    with pytest.raises(InvalidEvent, match="duplicate key 'name'"):
        load_file(path)
    path.write_text('{"name": "j1", "type": "bash", "script": "x", "retries": ' + "9" * 5000 + "}")
    with pytest.raises(InvalidEvent, match="more than 4300 digits"):
        load_file(path)


def test_a_huge_integer_is_the_usual_exit_2_error(tmp_path):
    (tmp_path / "big.yaml").write_text(f"{VALID}retries: {'9' * 5000}\n")
    done = cronium("apply", str(tmp_path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "big.yaml:4" in done.stderr and "more than 4300 digits" in done.stderr
    assert "Traceback" not in done.stderr


def test_yaml_on_key_is_a_word_not_a_boolean():
    (event,) = parse_text(f"{VALID}actions:\n  - on: success\n    run_event: ok\n")
    assert event.actions[0].on == "success"


def test_defaults_and_durations():
    (event,) = parse_text(
        f"{VALID}timeout: 1h30m\nschedule: {{interval: 15m}}\nenv: {{PORT: 8080, DEBUG: true}}\n"
    )
    assert event.status.value == "draft" and event.retries == 0 and event.max_executions == 0
    assert event.timeout == 5400 and event.schedule.interval == 900
    assert event.env == {"PORT": "8080", "DEBUG": "true"}
    assert event.run_location.value == "local" and event.priority.value == "normal"


def test_script_file_is_read_relative_to_the_definition(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "r.py").write_text("print('from file')\n")
    (tmp_path / "e.yaml").write_text("name: a\ntype: python\nscript_file: scripts/r.py\n")
    (event,) = load_paths([tmp_path])
    assert event.script == "print('from file')\n"


def test_parameters_round_trip_through_the_model():
    (event,) = parse_text(
        textwrap.dedent("""\
        name: full
        type: python
        script: print(1)
        status: active
        schedule: {cron: "0 3 * * *", timezone: Europe/Berlin}
        resources: {memory: 256m, cpus: 0.5, pids: 64, network: none}
        timeout: 5m
        retries: 2
        tags: [reports]
        owner: alice
        priority: high
        actions:
          - on: {all: [success, condition]}
            run_event: full
            delay: 10m
    """)
    )
    # The status is not a parameter: the deployment's paused flag holds it.
    assert "status" not in event.to_parameters()
    assert Event.model_validate(event.to_parameters()) == event.model_copy(
        update={"status": Event.model_fields["status"].default}
    )


@pytest.mark.parametrize("case", ["unknown key", "bad cron", "duplicate key", "yaml syntax"])
def test_cronium_run_exits_2_on_invalid_definitions_without_traceback(tmp_path, case):
    document, fragments = next(c[1:] for c in INVALID if c[0] == case)
    (tmp_path / "f.yaml").write_text(document)
    done = cronium("run", "f.yaml", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    for fragment in fragments:
        assert fragment in done.stderr


def test_cronium_run_exits_2_on_bad_input_json(tmp_path):
    (tmp_path / "f.yaml").write_text(VALID)
    done = cronium("run", "f.yaml", "--input", "{nope", cwd=tmp_path)
    assert done.returncode == 2 and "--input is not valid JSON" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unreachable_api_is_a_clear_error_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    (tmp_path / "f.yaml").write_text(VALID)
    for args in (["run", "f.yaml"], ["var", "get", "ANY"], ["server", "list"]):
        done = cronium(*args, cwd=tmp_path)
        assert done.returncode == 1, (args, done.stderr)
        assert "Traceback" not in done.stderr and "Prefect API" in done.stderr, done.stderr


def test_script_file_is_refused_outside_definition_files():
    with pytest.raises(ValueError, match="script_file is read from definition files only"):
        Event.model_validate({"name": "a", "type": "bash", "script_file": "/etc/passwd"})
