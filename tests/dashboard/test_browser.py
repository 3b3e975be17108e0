"""The dashboard in a real headless Chromium: run an event with an input from the Events
page, watch its log lines arrive on the event page before the run ends, see the final
status; screenshot every page (tests/artifacts/screenshots) and grep each for secrets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse

import pytest

from tests.browser import SHOTS, chromium
from tests.browser import body as _body
from tests.browser import body_with as _body_with
from tests.browser import drawn as _drawn
from tests.browser import field as _field
from tests.browser import idle as _idle
from tests.browser import open_page as _open
from tests.browser import wait as _wait
from tests.browser import widget as _widget
from tests.cli import cronium
from tests.ports import free_port
from tests.processes import stop, wait_for_http
from tests.receivers import HttpReceiver

from .seed import SECRET, SERVER, apply_seed, trigger, wait_final

PAGES = ["overview", "events", "runs", "servers", "variables"]


@pytest.fixture(scope="module")
def dashboard(request, prefect_api, worker, ssh_server, tmp_path_factory):
    key = ssh_server(SERVER).private_key.get_secret_value()
    receiver = HttpReceiver().start()
    request.addfinalizer(receiver.stop)
    apply_seed(tmp_path_factory.mktemp("browser") / "events", receiver.url("/hook"))
    seeded_run = trigger("dash-hello", 3)
    assert wait_final(seeded_run).state.name == "Completed"
    port = free_port()
    log = open(tmp_path_factory.mktemp("dashboard") / "dashboard.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "cronium_prefect.cli", "dashboard", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/_stcore/health", process)
    yield {"url": url, "seeded_run": seeded_run, "key_line": key.splitlines()[1]}
    stop(process)
    log.close()
    with pytest.raises(OSError):  # stopping `cronium dashboard` stops the server itself
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


def test_run_an_event_from_the_events_page_and_follow_its_live_log(dashboard, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _open(browser, f"{dashboard['url']}/events", "Events")
    search = _field(browser, "stTextInput", "Search by name", "input")
    search.send_keys("dash-slow", Keys.ENTER)
    _wait(lambda: "1 events" in _body(browser), what="the search result")
    box = _field(browser, "stTextArea", "Input (JSON)", "textarea")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys('{"from": "browser"}', Keys.CONTROL, Keys.ENTER)
    # Applied once the widget no longer offers "Press Ctrl+Enter to apply".
    _wait(
        lambda: (
            "to apply" not in _widget(browser, "stTextArea", "Input (JSON)").text and _idle(browser)
        ),
        what="the input applied",
    )
    button = _wait(
        lambda: next(
            b for b in browser.find_elements(By.TAG_NAME, "button") if b.text == "Run now"
        ),
        what="the Run now button",
    )
    button.click()
    link = _wait(
        lambda: next(
            a
            for a in browser.find_elements(By.TAG_NAME, "a")
            if a.text.startswith("Follow the run of dash-slow")
        ),
        what="the follow link",
    )
    browser.save_screenshot(str(SHOTS / "events-run-now.png"))
    run_id = _body(browser).split("Started dash-slow: flow run ", 1)[1].split()[0]
    link.click()
    _wait(lambda: "following the log" in _body(browser), what="the live log")
    # The script prints a line a second for 30 s: lines appear while it is still running.
    # (With 10 s, a loaded CI machine once showed the page's first lines after the last.)
    body = _wait(
        lambda: _body_with(browser, "slow line 2"),
        timeout=60,
        what="the first log lines",
    )
    assert "slow line 30" not in body and "RUNNING" in body, body[-2000:]
    browser.save_screenshot(str(SHOTS / "event-live-log.png"))
    body = _wait(
        lambda: None if "following the log" in _body(browser) else _body(browser),
        timeout=90,
        what="the live log to end",
    )
    assert f"Run {run_id}: SUCCESS" in body and "slow line 30" in body, body[-2000:]
    browser.save_screenshot(str(SHOTS / "event-finished.png"))


def test_every_page_renders_and_no_page_shows_a_secret(dashboard, browser):
    pages = [(f"{dashboard['url']}/", "Overview")]  # the default page lives at /
    pages += [(f"{dashboard['url']}/{name}", name.capitalize()) for name in PAGES[1:]]
    pages += [
        (f"{dashboard['url']}/event?name=dash-hello", "dash-hello"),
        (f"{dashboard['url']}/run?id={dashboard['seeded_run']}", "dash-hello: SUCCESS"),
    ]
    for url, title in pages:
        _open(browser, url, title)
        _wait(lambda: _drawn(browser), what=f"{title}'s tables and charts drawn")
        html = browser.page_source
        slug = url.rsplit("/", 1)[1].split("?")[0] or "overview"
        browser.save_screenshot(str(SHOTS / f"page-{slug}.png"))
        assert "Traceback" not in html and "Page not found" not in _body(browser), url
        assert SECRET not in html, f"the secret is in the HTML of {url}"
        assert dashboard["key_line"] not in html, f"the SSH key is in the HTML of {url}"
    assert "token is ***" in _body(browser)  # the run page shows the masked log line


def _forged_run(event: str, bait: str) -> str:
    """A flow run of `event`'s deployment made through Prefect's API, as anyone with access
    could: its `event` parameter and its trigger tag are the bait."""
    import asyncio

    from prefect.client.orchestration import get_client

    from cronium_prefect.flows.resolve import FLOW_NAME

    async def create() -> str:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name(f"{FLOW_NAME}/{event}")
            run = await client.create_flow_run_from_deployment(
                deployment.id, parameters={"event": bait}, tags=[f"cronium-trigger:{bait}"]
            )
            return str(run.id)

    return asyncio.run(create())


def test_remote_controlled_text_shows_as_text_never_as_markdown(dashboard, browser, tmp_path):
    """A definition's description, a script's error (a file name it chose), a link's query
    and a run's parameters and tags set through Prefect's API each carry markdown: links, images the browser would fetch, emphasis, Streamlit
    colour directives. Each page shows them as the characters they are."""
    from selenium.webdriver.common.by import By

    tracker = HttpReceiver().start()
    try:
        bait = f"![img]({tracker.url('/image')}) [click]({tracker.url('/link')}) **bold** :red[red]"
        folder = tmp_path / "hostile"
        folder.mkdir()
        (folder / "hostile.yaml").write_text(
            "name: dash-hostile-text\ntype: bash\nstatus: active\n"
            f"description: {json.dumps(bait)}\n"
            "script: |\n"
            '  mkdir -p "$CRONIUM_DIR/out/vars"\n'
            '  touch "$CRONIUM_DIR/out/vars/**bold** [x](y) ![i](z) :red[r].txt"\n'
        )
        assert cronium("apply", str(folder)).returncode == 0
        run_id = trigger("dash-hostile-text", None)
        assert wait_final(run_id).state.name == "Failed"
        forged = _forged_run("dash-hostile-text", bait)
        url = dashboard["url"]
        pages = [
            (f"{url}/event?name=dash-hostile-text", "dash-hostile-text", bait),
            (f"{url}/run?id={run_id}", "dash-hostile-text: FAILURE", "**bold** [x](y) ![i](z)"),
            (f"{url}/run?id={urllib.parse.quote(bait)}", None, bait),
            (f"{url}/run?id={forged}", None, "unknown event"),
        ]
        for page, title, shown in pages:
            if title is None:  # a page that only says what is wrong: no title
                browser.get(page)
            else:
                _open(browser, page, title)
            _wait(lambda: _drawn(browser), what=f"{page} drawn")
            assert _wait(lambda text=shown: _body_with(browser, text), what=f"{shown!r} as text")
            links = [a.get_attribute("href") or "" for a in browser.find_elements(By.TAG_NAME, "a")]
            images = [
                i.get_attribute("src") or "" for i in browser.find_elements(By.TAG_NAME, "img")
            ]
            assert not [x for x in links + images if x.startswith(tracker.url("/"))], page
            emphasis = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "strong, em")]
            assert not [e for e in emphasis if "bold" in e or "red" in e], (page, emphasis)
        time.sleep(1)  # an image would have been fetched by now
        assert tracker.requests == []
    finally:
        tracker.stop()
