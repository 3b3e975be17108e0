"""Users and roles in the dashboard, against the real Prefect server and Cronium's tables:
what each role sees and may do (AppTest), that a refused action is refused server-side
even when the page is forced (a disabled button clicked anyway), and sign-in in a real
headless Chromium (a wrong password, a refresh that keeps the session, sign-out)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from cronium_prefect.access import Role
from cronium_prefect.dashboard import auth
from cronium_prefect.dashboard.launch import APP
from cronium_prefect.service import audit
from cronium_prefect.service.sessions import start_session
from cronium_prefect.service.store import DATABASE_ENV, Store
from cronium_prefect.service.users import add_user, find_user
from tests.browser import body, chromium, wait
from tests.ports import free_port
from tests.processes import stop, wait_for_http

from .seed import runs_of

EVENT = "roles-ev"
PASSWORDS = {
    "r-admin": "admin-password",
    "r-admin2": "admin2-password",
    "r-op": "operator-password",
    "r-view": "viewer-pass",
    "r-stale": "stale-password",
}
ROLES = {
    "r-admin": Role.admin,
    "r-admin2": Role.admin,
    "r-op": Role.operator,
    "r-view": Role.viewer,
    "r-stale": Role.operator,
}


@pytest.fixture(scope="module")
def users_db(prefect_api, tmp_path_factory):
    """Cronium's tables in a database of this module's own (users exist only here: every
    other dashboard test sees the open dashboard), and an event to act on."""
    from tests.cli import cronium

    folder = tmp_path_factory.mktemp("roles")
    url = f"sqlite+aiosqlite:///{folder / 'cronium.db'}"
    before = os.environ.get(DATABASE_ENV)
    os.environ[DATABASE_ENV] = url
    st.cache_resource.clear()

    async def seed():
        store = Store(url)
        for name, role in ROLES.items():
            if await find_user(store, name) is None:
                await add_user(store, name, role, PASSWORDS[name])
        await store.close()

    asyncio.run(seed())
    (folder / "ev.yaml").write_text(
        f"name: {EVENT}\ntype: bash\nstatus: active\npool: roles-nobody\nscript: 'true'\n"
    )
    applied = cronium("apply", str(folder / "ev.yaml"))
    assert applied.returncode == 0, applied.stderr
    yield url
    if before is None:
        os.environ.pop(DATABASE_ENV, None)
    else:
        os.environ[DATABASE_ENV] = before
    st.cache_resource.clear()


def session_of(url: str, name: str) -> str:
    async def start():
        store = Store(url)
        user = await find_user(store, name)
        cookie = await start_session(store, user.id)
        await store.close()
        return cookie

    return asyncio.run(start())


def audit_of(url: str, event: str | None):
    async def read():
        store = Store(url)
        found = await audit.read(store, event=event)
        await store.close()
        return found

    return asyncio.run(read())


def app_as(url: str, name: str | None, page: str | None = None) -> AppTest:
    st.cache_data.clear()
    app = AppTest.from_file(str(APP), default_timeout=60)
    if name is not None:
        app.session_state[auth.SESSION_STATE] = session_of(url, name)
    app.run()
    if page is not None:
        app.switch_page(page).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def button(app: AppTest, label: str):
    return next(b for b in app.button if b.label == label)


def test_signed_out_visitors_see_only_the_sign_in_prompt(users_db):
    app = app_as(users_db, None)
    assert [i.value for i in app.info] == ["Sign in to use the dashboard."]
    assert not app.title[1:] and not app.dataframe  # no page ran
    forged = AppTest.from_file(str(APP), default_timeout=60)
    forged.session_state[auth.SESSION_STATE] = "a" * 12 + "_" + "b" * 43  # no such session
    forged.run()
    assert [i.value for i in forged.info] == ["Sign in to use the dashboard."]


def set_role_of(url: str, name: str, role: Role) -> None:
    from cronium_prefect.service.users import set_role

    async def change():
        store = Store(url)
        await set_role(store, name, role)
        await store.close()

    asyncio.run(change())


def test_a_viewer_sees_run_and_pause_disabled_and_no_admin_pages(users_db):
    app = app_as(users_db, "r-view", "app_pages/events.py")
    for label in ["Run now", "Pause", "Resume"]:
        assert button(app, label).disabled, label
    app = app_as(users_db, "r-view", "app_pages/variables.py")
    assert all(b.disabled for b in app.button if b.label in ("Save", "Delete"))
    for admin_page in ["app_pages/users.py", "app_pages/audit.py"]:
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            app.switch_page(admin_page)  # not in a viewer's navigation


def _forced(call: str) -> None:
    """A page script that makes one call of the dashboard's data layer directly, as a forged
    request would reach it whatever the pages show: the refusal is what it prints."""
    import streamlit as st

    from cronium_prefect.dashboard import data_access, data_admin  # noqa: F401
    from cronium_prefect.dashboard.api import DashboardError

    try:
        eval(call)  # noqa: S307 - the test's own text
    except DashboardError as exc:
        st.error(str(exc))
    else:
        st.success("done")


FORCED = [
    ("r-view", f"data_admin.run_now({EVENT!r}, None)", "r-view (viewer) may not run events"),
    ("r-view", f"data_admin.set_status({EVENT!r}, 'paused')", "may not pause or resume"),
    ("r-view", "data_admin.set_variable('ROLES_V', 1, None, False)", "may not set or delete"),
    ("r-view", "data_admin.test_server('any-server')", "may not run events"),
    ("r-op", "data_admin.set_variable('ROLES_SECRET', 'x', None, True)", "may not change servers"),
    ("r-op", "data_access.add_user('r-sneaky', 'admin', 'sneaky-password')", "may not manage"),
    ("r-op", "data_access.set_role('r-op', 'admin')", "may not manage users"),
    ("r-op", "data_access.audit_rows(None, None, None)", "may not manage users"),
    ("r-op", "data_access.token_rows(everyone=True)", "may not manage users"),
    ("r-op", "data_access.delete_user('r-view')", "may not manage users"),
    ("r-view", "data_admin.delete_variable('ROLES_PLAIN', None)", "may not set or delete"),
    ("r-op", "data_access.revoke_token(ADMIN_TOKEN)", "no token"),  # another user's
]


def _admin_token_id(url: str) -> str:
    from datetime import timedelta

    from cronium_prefect.service.tokens import create_token

    async def make():
        store = Store(url)
        info, _ = await create_token(store, "r-admin", ["read"], timedelta(days=1))
        await store.close()
        return info.id

    return asyncio.run(make())


@pytest.mark.parametrize("user,call,refusal", FORCED, ids=[c for _, c, _ in FORCED])
def test_every_action_is_refused_server_side_to_a_role_that_may_not(users_db, user, call, refusal):
    runs_before = len(runs_of(EVENT))
    if "ADMIN_TOKEN" in call:
        call = call.replace("ADMIN_TOKEN", repr(_admin_token_id(users_db)))
    app = AppTest.from_function(_forced, args=(call,), default_timeout=60)
    app.session_state[auth.SESSION_STATE] = session_of(users_db, user)
    app.run()
    assert not app.exception, [e.message for e in app.exception]
    assert [e.value for e in app.error] and refusal in app.error[0].value, [
        s.value for s in app.success
    ]
    assert len(runs_of(EVENT)) == runs_before
    latest = audit_of(users_db, None)[-1]
    assert (latest.actor, latest.outcome) == (user, "refused")


def test_a_page_drawn_for_an_operator_does_nothing_once_they_are_a_viewer(users_db):
    runs_before = len(runs_of(EVENT))
    app = app_as(users_db, "r-stale", "app_pages/events.py")
    app.selectbox(key="action_event").set_value(EVENT).run()
    assert not button(app, "Run now").disabled
    set_role_of(users_db, "r-stale", Role.viewer)
    try:
        button(app, "Run now").click().run()
        assert button(app, "Run now").disabled and not app.success
    finally:
        set_role_of(users_db, "r-stale", Role.operator)
    assert len(runs_of(EVENT)) == runs_before


def test_an_operator_runs_pauses_and_sets_plain_variables_but_not_secrets(users_db):
    runs_before = len(runs_of(EVENT))
    app = app_as(users_db, "r-op", "app_pages/events.py")
    app.selectbox(key="action_event").set_value(EVENT).run()
    assert not button(app, "Run now").disabled
    button(app, "Run now").click().run()
    assert any(f"Started {EVENT}" in s.value for s in app.success), [e.value for e in app.error]
    assert len(runs_of(EVENT)) == runs_before + 1
    button(app, "Pause").click().run()
    button(app, "Resume").click().run()
    assert not app.error
    app = app_as(users_db, "r-op", "app_pages/variables.py")
    assert app.checkbox[0].disabled  # "Secret": admins only
    app.text_input[0].input("ROLES_PLAIN")
    app.text_area[0].input("1")
    button(app, "Save").click().run()
    assert not app.error, [e.value for e in app.error]
    actions = [(e.actor, e.action, e.outcome) for e in audit_of(users_db, EVENT)]
    for expected in [("r-op", "trigger", "ok"), ("r-op", "pause", "ok"), ("r-op", "resume", "ok")]:
        assert expected in actions
    # The operator's save, once (the forced-call matrix records a viewer's refusal too).
    saved = [(e.target, e.outcome) for e in audit_of(users_db, "ROLES_PLAIN") if e.actor == "r-op"]
    assert saved == [("ROLES_PLAIN", "ok")]


def test_an_admin_manages_users_and_reads_the_audit_log(users_db):
    app = app_as(users_db, "r-admin", "app_pages/users.py")
    assert "r-view" in app.dataframe[0].value.to_csv()
    app.text_input[0].input("r-new")
    app.text_input[1].input("new-user-password")
    button(app, "Add user").click().run()
    assert any("added r-new" in s.value for s in app.success), [e.value for e in app.error]
    app = app_as(users_db, "r-admin", "app_pages/audit.py")
    shown = app.dataframe[0].value.to_csv()
    assert "user.add" in shown and "r-new" in shown
    # Demoted, the same user no longer has the admin pages at all.
    set_role_of(users_db, "r-admin2", Role.operator)
    try:
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            app_as(users_db, "r-admin2", "app_pages/users.py")
    finally:
        set_role_of(users_db, "r-admin2", Role.admin)


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def dashboard(users_db, tmp_path_factory):
    port = free_port()
    log = open(tmp_path_factory.mktemp("roles-dash") / "dashboard.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "cronium_prefect.cli", "dashboard", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),  # with this module's database
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/_stcore/health", process)
    yield url
    stop(process)
    log.close()


def _run_now_button(browser):
    """The Events page's Run now button, once the page has drawn it (the sidebar draws
    first: waiting for the page to be idle alone was not enough)."""
    from selenium.webdriver.common.by import By

    return wait(
        lambda: next(
            b for b in browser.find_elements(By.TAG_NAME, "button") if b.text == "Run now"
        ),
        what="the Run now button",
    )


def _sign_in(browser, url: str, name: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{url}/signin")
    browser.find_element(By.ID, "user").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "sign-in").click()


def test_sign_in_in_a_browser_survives_a_refresh_and_signs_out(users_db, dashboard, browser):
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(f"{dashboard}/events")
    wait(lambda: "Sign in to use the dashboard" in body(browser), what="the sign-in prompt")
    _sign_in(browser, dashboard, "r-view", "not-the-password")
    wait(lambda: "Wrong user name or password" in body(browser), what="the refusal")
    assert browser.get_cookie(auth.COOKIE) is None
    _sign_in(browser, dashboard, "r-view", PASSWORDS["r-view"])
    wait(lambda: "Signed in as r-view (viewer)" in body(browser), what="the viewer's dashboard")
    cookie = browser.get_cookie(auth.COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert "document.cookie" not in browser.page_source
    assert browser.execute_script("return document.cookie").find(auth.COOKIE) == -1
    browser.get(f"{dashboard}/events")  # a refresh: a new Streamlit session, same sign-in
    try:
        wait(lambda: "Signed in as r-view" in body(browser), what="the refresh")
    except AssertionError as exc:  # once in CI (1 of 4 runs): say what the page showed
        cookie = browser.get_cookie(auth.COOKIE) is not None
        raise AssertionError(
            f"{exc}; cookie kept: {cookie}; page: {body(browser)[-1500:]}"
        ) from None
    assert not _run_now_button(browser).is_enabled()
    browser.get(f"{dashboard}/signout")
    wait(lambda: browser.find_elements(By.ID, "sign-in"), what="the sign-in form")
    browser.get(f"{dashboard}/events")
    wait(lambda: "Sign in to use the dashboard" in body(browser), what="signed out")
    # An operator, in the same browser: Run now is there to press.
    _sign_in(browser, dashboard, "r-op", PASSWORDS["r-op"])
    wait(lambda: "Signed in as r-op (operator)" in body(browser), what="the operator")
    browser.get(f"{dashboard}/events")
    assert _run_now_button(browser).is_enabled()
    signins = [(e.actor, e.outcome) for e in audit_of(users_db, "r-view") if e.action == "sign-in"]
    assert signins[-2:] == [("r-view", "refused"), ("r-view", "ok")]


def test_a_sign_in_form_posted_from_another_site_is_refused(users_db, dashboard):
    import httpx

    form = {"user": "r-view", "password": PASSWORDS["r-view"]}
    for origin in ["http://evil.example", "null", "http://127.0.0.1:1"]:
        answer = httpx.post(f"{dashboard}/signin", data=form, headers={"Origin": origin})
        assert answer.status_code == 403 and "set-cookie" not in answer.headers, origin
    same = httpx.post(
        f"{dashboard}/signin", data=form, headers={"Origin": dashboard}, follow_redirects=False
    )
    assert same.status_code == 303 and auth.COOKIE in same.headers["set-cookie"]
    assert "HttpOnly" in same.headers["set-cookie"] and "Secure" not in same.headers["set-cookie"]
    proxied = httpx.post(
        f"{dashboard}/signin",
        data=form,
        headers={"X-Forwarded-Proto": "https"},
        follow_redirects=False,
    )
    assert "Secure" in proxied.headers["set-cookie"]  # behind a TLS proxy
