"""Small pieces every page uses: status colours, links, formatting."""

from __future__ import annotations

import json
import uuid
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st
from prefect.settings import get_current_settings

__all__ = [
    "run_id_or_none",
    "STATUS_COLOURS",
    "status_scale",
    "any_value",
    "pager",
    "runs_table",
    "prefect_ui_url",
    "as_json",
    "event_link",
    "run_link",
    "durations_chart",
]

STATUS_COLOURS = {
    "SUCCESS": "#2e9e44",
    "FAILURE": "#d62728",
    "TIMEOUT": "#ff7f0e",
    "PARTIAL": "#e6b800",
    "CANCELLED": "#7f7f7f",
    "RUNNING": "#1f77b4",
    "PENDING": "#9ecae1",
}


# Text from outside (scripts, servers, HTTP answers, definitions, a link's query) is shown
# with st.text or st.code, never as markdown (st.markdown, st.write, st.error, st.caption):
# there a link or an image (which the browser fetches) would take effect, and even
# escaped, a bare URL becomes a link (GFM autolinks). Markdown carries our own words and
# names the model validated.


def run_id_or_none(value: str | None) -> str | None:
    """A flow run id from a link's query, or None when it is not one."""
    try:
        return str(uuid.UUID(value or ""))
    except ValueError:
        return None


def any_value(value: str) -> str:
    """How an empty filter choice reads."""
    return value or "any"


def pager(state_key: str, page: int, pages: int) -> None:
    """Previous / next buttons for a list paged by the API; the page lives in session state."""
    previous, following, _ = st.columns([1.3, 1.3, 5])
    if previous.button("Previous page", disabled=page <= 1):
        st.session_state[state_key] = page - 1
        st.rerun()
    if following.button("Next page", disabled=page >= pages):
        st.session_state[state_key] = page + 1
        st.rerun()


def status_scale() -> alt.Scale:
    return alt.Scale(domain=list(STATUS_COLOURS), range=list(STATUS_COLOURS.values()))


def event_link(name: str | None) -> str | None:
    # Relative links: they keep working behind a proxy that serves the app under a path.
    return f"event?name={name}" if name else None


def run_link(run_id: str) -> str:
    return f"run?id={run_id}"


def runs_table(rows: list[dict[str, Any]], key: str) -> None:
    """Runs with links to their event and run pages."""
    if not rows:
        st.info("No runs.")
        return
    frame = pd.DataFrame(
        [
            {
                "run": run_link(r["run_id"]),
                "event": event_link(r["event"]),
                "status": r["status"],
                "trigger": r["trigger"],
                "start": r["start"],
                "end": r["end"],
                "duration (s)": r["duration_s"],
            }
            for r in rows
        ]
    )
    st.dataframe(
        frame,
        key=key,
        hide_index=True,
        width="stretch",
        column_config={
            "run": st.column_config.LinkColumn("run", display_text="open"),
            "event": st.column_config.LinkColumn("event", display_text=r"event\?name=(.*)"),
            "duration (s)": st.column_config.NumberColumn(format="%.2f"),
        },
    )


def durations_chart(runs: list[dict[str, Any]]) -> None:
    """Runs as bars: when each started, how long it took, coloured by status."""
    frame = pd.DataFrame(runs)
    chart = (
        alt.Chart(frame.dropna(subset=["start"]))
        .mark_bar(size=6)
        .encode(
            x=alt.X("start:T", title="started (UTC)", axis=alt.Axis(format="%m-%d %H:%M")),
            y=alt.Y("duration_s:Q", title="duration (s)"),
            color=alt.Color("status:N", scale=status_scale()),
            tooltip=["run_name", "status", "start", "duration_s"],
        )
    )
    st.altair_chart(chart, width="stretch")


def prefect_ui_url() -> str | None:
    settings = get_current_settings()
    ui = settings.ui_url or (settings.api.url or "").removesuffix("/api")
    return ui or None


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
