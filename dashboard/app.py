"""The dashboard's entry file (`cronium dashboard` runs `streamlit run` on it)."""

import logging
from pathlib import Path

import streamlit as st

from cronium_prefect.dashboard.api import DashboardError

PAGES = Path(__file__).parent / "app_pages"

st.set_page_config(page_title="Cronium", page_icon="⏱", layout="wide")
page = st.navigation(
    [
        st.Page(PAGES / "overview.py", title="Overview", url_path="overview", default=True),
        st.Page(PAGES / "events.py", title="Events", url_path="events"),
        st.Page(PAGES / "event.py", title="Event", url_path="event"),
        st.Page(PAGES / "runs.py", title="Runs", url_path="runs"),
        st.Page(PAGES / "run.py", title="Run", url_path="run"),
        st.Page(PAGES / "servers.py", title="Servers", url_path="servers"),
        st.Page(PAGES / "variables.py", title="Variables", url_path="variables"),
    ]
)
try:
    page.run()
except DashboardError as exc:
    st.error(str(exc))
except Exception as exc:  # a bug of ours: a message in the page, the traceback in the log
    logging.getLogger("cronium.dashboard").exception("page %s failed", page.title)
    st.error(f"Unexpected error ({type(exc).__name__}): {exc}. The dashboard's log has details.")
