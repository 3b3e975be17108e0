"""Every dashboard page, run by Streamlit's AppTest against the real Prefect server with
seeded events, runs, a server on the test sshd and variables."""

from __future__ import annotations

import json
import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from cronium_prefect.dashboard.launch import APP
from cronium_prefect.flows.servers import announce_circuit
from tests.receivers import HttpReceiver

from .seed import SECRET, SERVER, apply_seed, runs_of, trigger, wait_final


@pytest.fixture(scope="module")
def seeded(request, prefect_api, worker, ssh_server, tmp_path_factory):
    ssh_server(SERVER)
    receiver = HttpReceiver().start()
    request.addfinalizer(receiver.stop)
    apply_seed(tmp_path_factory.mktemp("dash") / "events", receiver.url("/hook"))
    run_id = trigger("dash-hello", 7)
    run = wait_final(run_id)
    assert run.state.name == "Completed", run.state
    chained = [r for r in runs_of("dash-next")]
    assert chained, "dash-hello's action did not start dash-next"
    wait_final(str(chained[0].id))
    return {"run_id": run_id}


def page(path: str, **query: str) -> AppTest:
    """The app at one page; caches cleared so every test reads the API afresh."""
    st.cache_data.clear()
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.run()
    app.query_params.update(query)
    app.switch_page(path).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def texts(app: AppTest) -> str:
    """Everything the page shows as text (markdown, code, metrics, captions, alerts)."""
    parts = []
    kinds = ("title", "subheader", "markdown", "text", "code", "caption")
    for kind in (*kinds, "error", "info", "success", "warning"):
        parts += [str(element.value) for element in getattr(app, kind)]
    parts += [f"{m.label} {m.value}" for m in app.metric]
    parts += [frame.value.to_csv() for frame in app.dataframe]
    return "\n".join(parts)


def test_overview_counts_events_and_shows_recent_runs(seeded):
    app = page("app_pages/overview.py")
    metrics = {m.label: m.value for m in app.metric}
    assert int(metrics["active events"]) >= 3
    assert int(metrics["draft events"]) >= 1
    assert int(metrics["runs (24 h)"]) >= 2
    assert "dash-hello" in texts(app) and "SUCCESS" in texts(app)
    assert app.get("vega_lite_chart"), "no runs-per-hour chart"


def test_events_page_filters_through_the_api(seeded):
    app = page("app_pages/events.py")
    app.text_input[0].input("dash-").run()
    frame = app.dataframe[0].value
    names = {link.split("=", 1)[1] for link in frame["event"]}
    assert {"dash-hello", "dash-next", "dash-remote", "dash-slow"} <= names
    hello = frame[frame["event"] == "event?name=dash-hello"].iloc[0]
    assert hello["last status"] == "SUCCESS" and hello["success"] == 1.0
    assert hello["schedule"].startswith("cron 0 3 * * *") and hello["next run"]
    app.selectbox[1].select("python").run()  # type
    assert list(app.dataframe[0].value["event"]) == ["event?name=dash-next"]
    app.selectbox[1].select("").run()
    app.text_input[2].input(SERVER).run()  # server
    assert list(app.dataframe[0].value["event"]) == ["event?name=dash-remote"]
    app.text_input[2].input("").run()
    app.text_input[3].input("ana").run()  # owner
    assert list(app.dataframe[0].value["event"]) == ["event?name=dash-hello"]


def test_run_now_validates_the_input_before_sending(seeded):
    app = page("app_pages/events.py")
    app.text_input[0].input("dash-next").run()
    before = len(runs_of("dash-next"))
    app.text_area[0].input('{"broken": ').run()
    next(b for b in app.button if b.label == "Run now").click().run()
    assert "Input is not JSON" in texts(app)
    assert len(runs_of("dash-next")) == before
    app.text_area[0].input('{"from": "dashboard"}').run()
    next(b for b in app.button if b.label == "Run now").click().run()
    assert "Started dash-next" in texts(app)
    run = wait_final(texts(app).split("flow run ")[1].split()[0])
    assert run.parameters["input"] == {"from": "dashboard"}
    assert "cronium-trigger:manual" in run.tags


def test_pause_and_resume_change_the_deployment(seeded):
    app = page("app_pages/events.py")
    app.text_input[0].input("dash-slow").run()
    next(b for b in app.button if b.label == "Pause").click().run()
    app.text_input[0].input("dash-slow").run()
    assert app.dataframe[0].value.iloc[0]["status"] == "paused"
    next(b for b in app.button if b.label == "Resume").click().run()
    app.text_input[0].input("dash-slow").run()
    assert app.dataframe[0].value.iloc[0]["status"] == "active"


def test_event_page_shows_definition_schedule_log_history_and_graph(seeded):
    app = page("app_pages/event.py", name="dash-hello")
    shown = texts(app)
    assert app.title[0].value == "dash-hello"
    assert 'echo "dash line one"' in shown  # the script
    assert "dash line one" in shown.split("Run [")[1]  # the latest run's log
    next_runs = [m.value for m in app.markdown if m.value.startswith("Next runs:")]
    assert next_runs and next_runs[0].count("T03:00:00") == 5
    graph = app.get("graphviz_chart")[0].proto.spec
    assert '"dash-hello" -> "dash-next" [label="success"]' in graph
    history = app.dataframe[0].value
    assert json.loads(history.iloc[0]["output"]) == {"got": 7}
    assert history.iloc[0]["status"] == "SUCCESS"
    chained = page("app_pages/event.py", name="dash-next")
    assert '"dash-hello" -> "dash-next"' in chained.get("graphviz_chart")[0].proto.spec


def test_event_page_names_an_unknown_event(seeded):
    app = page("app_pages/event.py", name="no-such-event")
    assert "No event by this name is deployed" in app.error[0].value
    assert app.text[0].value == "no-such-event"


def test_a_bad_or_unknown_run_id_is_a_message(seeded):
    app = page("app_pages/run.py", id="../../etc/passwd")
    assert "No run with this id" in app.error[0].value  # never put into an API path
    app = page("app_pages/run.py", id="00000000-0000-4000-8000-000000000000")
    assert "No run with this id" in app.error[0].value
    app = page("app_pages/event.py", name="dash-hello", run="00000000-0000-4000-8000-000000000000")
    assert "The log cannot be followed" in app.warning[0].value


def test_runs_page_filters_by_event_status_and_trigger(seeded):
    app = page("app_pages/runs.py")
    app.text_input[0].input("dash-hello").run()
    frame = app.dataframe[0].value
    assert f"run?id={seeded['run_id']}" in list(frame["run"])
    app.selectbox[2].select("manual").run()  # trigger
    assert set(app.dataframe[0].value["trigger"]) == {"manual"}
    app.selectbox[2].select("schedule").run()
    assert "No runs." in texts(app)
    app.selectbox[2].select("").run()
    app.selectbox[0].select("FAILURE").run()
    assert "No runs." in texts(app)


def test_run_page_shows_record_logs_and_timings(seeded):
    app = page("app_pages/run.py", id=seeded["run_id"])
    shown = texts(app)
    assert app.title[0].value == "dash-hello: SUCCESS"
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["exit code"] == "0" and metrics["setup"].endswith(" s")
    assert '"got": 7' in shown and "dash line one" in shown
    assert "token is ***" in shown and SECRET not in shown
    messages = app.dataframe[-1].value  # the message the run's action sent, and how it went
    assert list(messages["channel"]) == ["dash-hook"], messages.to_dict("records")
    assert list(messages["status"]) == ["sent"], messages.to_dict("records")[0]["error"]


def test_servers_page_tests_a_server_and_lists_its_events(seeded):
    app = page("app_pages/servers.py")
    shown = texts(app)
    assert SERVER in [h.value for h in app.subheader] and "Used by: dash-remote" in shown
    assert "Circuit breaker: closed" in shown
    announce_circuit(SERVER, "open", 3, 600)  # what a worker's breaker records when it opens
    deadline = time.monotonic() + 20
    while "Circuit breaker: open since" not in texts(opened := page("app_pages/servers.py")):
        assert time.monotonic() < deadline, texts(opened)
        time.sleep(0.5)
    announce_circuit(SERVER, "closed", 0, 600)
    app.button(key=f"test-{SERVER}").click().run()
    assert "passed" in app.success[0].value and "CPUs" in app.text[-1].value
    deadline = time.monotonic() + 20  # recorded as a Prefect event, stored asynchronously
    while True:
        again = page("app_pages/servers.py")
        if any("OK —" in t.value for t in again.text):
            break
        assert time.monotonic() < deadline, texts(again)
        time.sleep(0.5)
    assert "CPUs" in texts(again)


def test_variables_page_masks_secrets_and_sets_and_deletes(seeded):
    app = page("app_pages/variables.py")
    frame = app.dataframe[0].value
    secret_row = frame[frame["key"] == "DASH_SECRET"].iloc[0]
    assert secret_row["value"] == "***" and SECRET not in frame.to_csv()
    form_key, value, owner = app.text_input[0], app.text_area[0], app.text_input[1]
    form_key.input("DASH_NEW")
    value.input('{"a": 1}')
    owner.input("ana")
    app.button[0].click().run()
    assert app.success[0].value == "saved DASH_NEW"
    frame = app.dataframe[0].value
    row = frame[frame["key"] == "DASH_NEW"].iloc[0]
    assert row["owner"] == "ana" and json.loads(row["value"]) == {"a": 1}
    app.selectbox[0].select("ana / DASH_NEW")  # a form: sent with its submit button
    app.button[1].click().run()
    assert app.success[0].value == "deleted DASH_NEW"
    assert "DASH_NEW" not in list(app.dataframe[0].value["key"])
    app.text_input[0].input("bad key")
    app.text_area[0].input("1")
    app.button[0].click().run()
    assert "must match" in app.error[0].value


_PAGES_IN_A_PROCESS = """
import json, sys
from streamlit.testing.v1 import AppTest
shown = {}
for path in sys.argv[2:]:
    app = AppTest.from_file(sys.argv[1], default_timeout=60)
    app.run()
    app.switch_page(path).run()
    shown[path] = {
        "errors": [e.value for e in app.error],
        "exceptions": len(app.exception),
        "titles": [t.value for t in app.title],
    }
print(json.dumps(shown))
"""


def test_an_unreachable_api_is_a_message_not_a_traceback(prefect_api):
    """In a process of its own: Prefect reads PREFECT_API_URL when it is imported."""
    import os

    from tests.ports import free_port

    pages = [f"app_pages/{name}.py" for name in ("overview", "events", "runs", "servers")]
    pages += ["app_pages/variables.py"]
    env = {**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}
    shown = _pages_in_a_process(env, pages)
    for path in pages:
        assert shown[path]["exceptions"] == 0, (path, shown[path])
        assert any("cannot reach the Prefect API" in e for e in shown[path]["errors"]), (
            path,
            shown[path],
        )


def _pages_in_a_process(env: dict[str, str], pages: list[str]) -> dict:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _PAGES_IN_A_PROCESS, str(APP), *pages],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_dashboard_works_against_a_server_with_basic_auth(tmp_path):
    """Prefect's basic auth: with PREFECT_API_AUTH_STRING every page renders; without it
    the page says the API answered 401 and what to set."""
    import os

    from cronium_prefect.cli.api import start_prefect_server
    from tests.ports import free_port
    from tests.processes import stop, wait_for_http

    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    server_env = {
        "PREFECT_SERVER_API_AUTH_STRING": "admin:dash-pass",
        "PREFECT_HOME": str(tmp_path / "home"),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
    }
    with open(tmp_path / "server.log", "w") as log:
        server = start_prefect_server(port, server_env, log=log)
        try:
            with_auth = {
                **os.environ,
                "PREFECT_API_URL": url,
                "PREFECT_API_AUTH_STRING": "admin:dash-pass",
            }
            # its health check wants the credentials too
            wait_for_http(f"{url}/health", server, auth=("admin", "dash-pass"), timeout=180)
            pages = ["app_pages/overview.py", "app_pages/events.py", "app_pages/variables.py"]
            shown = _pages_in_a_process(with_auth, pages)
            for path in pages:
                assert shown[path] == {**shown[path], "errors": [], "exceptions": 0}, (
                    path,
                    shown[path],
                )
            assert shown["app_pages/overview.py"]["titles"] == ["Overview"]
            without = {k: v for k, v in with_auth.items() if k != "PREFECT_API_AUTH_STRING"}
            refused = _pages_in_a_process(without, ["app_pages/events.py"])["app_pages/events.py"]
            assert refused["exceptions"] == 0
            assert any(
                "answered 401" in e and "PREFECT_API_AUTH_STRING" in e for e in refused["errors"]
            ), refused
        finally:
            stop(server)
