"""The dashboard's entry file (server.py serves it with the sign-in routes; AppTest runs it
alone): who is visiting, then the pages their role may see."""

import logging
from pathlib import Path

import streamlit as st

from cronium_prefect.access import Permission, Role
from cronium_prefect.dashboard import auth
from cronium_prefect.dashboard.api import DashboardError

PAGES = Path(__file__).parent / "app_pages"

st.set_page_config(page_title="Cronium", page_icon="⏱", layout="wide")
try:
    actor = auth.current_actor()
except DashboardError as exc:  # the database is not the server's, or is down
    st.error(str(exc))
    st.stop()
if actor is None:  # users exist, and this browser has no live session
    st.title("Cronium")
    st.info("Sign in to use the dashboard.")
    st.link_button("Sign in", "signin", type="primary")
    st.stop()
st.session_state["actor"] = actor  # for pages to hide what the role may not do
pages = [
    st.Page(PAGES / "overview.py", title="Overview", url_path="overview", default=True),
    st.Page(PAGES / "events.py", title="Events", url_path="events"),
    st.Page(PAGES / "event.py", title="Event", url_path="event"),
    st.Page(PAGES / "workflows.py", title="Workflows", url_path="workflows"),
    st.Page(PAGES / "workflow.py", title="Workflow", url_path="workflow"),
    st.Page(PAGES / "runs.py", title="Runs", url_path="runs"),
    st.Page(PAGES / "run.py", title="Run", url_path="run"),
    st.Page(PAGES / "servers.py", title="Servers", url_path="servers"),
    st.Page(PAGES / "variables.py", title="Variables", url_path="variables"),
]
if actor.name != "anonymous":
    pages.append(st.Page(PAGES / "tokens.py", title="My tokens", url_path="tokens"))
if actor.may(Permission.administer):
    pages.append(st.Page(PAGES / "users.py", title="Users", url_path="users"))
    pages.append(st.Page(PAGES / "audit.py", title="Audit", url_path="audit"))
page = st.navigation(pages)
with st.sidebar:
    if actor.name == "anonymous":
        st.caption("No users yet: the dashboard is open (`cronium user add` adds the first).")
    else:
        st.caption(f"Signed in as **{actor.name}** ({actor.role.value})")
        st.link_button("Sign out", "signout")
    if actor.role == Role.viewer:
        st.caption("Viewer: read only.")
try:
    page.run()
except DashboardError as exc:
    st.error(str(exc))
except Exception as exc:  # a bug of ours: a message in the page, the traceback in the log
    logging.getLogger("cronium.dashboard").exception("page %s failed", page.title)
    st.error(f"Unexpected error ({type(exc).__name__}): {exc}. The dashboard's log has details.")
