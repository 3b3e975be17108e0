"""Overview: events by status, the last 24 h of runs, what is running now."""

import altair as alt
import pandas as pd
import streamlit as st

from cronium_prefect.dashboard import data_runs, ui

st.title("Overview")
data = data_runs.overview()
events, runs = data["events_by_status"], data["runs_by_status"]
columns = st.columns(7)
for column, status in zip(columns, ["active", "paused", "draft", "archived"], strict=False):
    column.metric(f"{status} events", events[status])
columns[4].metric("runs (24 h)", sum(runs.values()))
columns[5].metric("failed (24 h)", runs.get("FAILURE", 0) + runs.get("TIMEOUT", 0))
rate = data["success_rate"]
columns[6].metric("success rate", "-" if rate is None else f"{rate:.0%}")

st.subheader("Runs per hour, last 24 h (UTC)")
if sum(runs.values()):
    chart = (
        alt.Chart(pd.DataFrame(data["per_hour"]))
        .mark_bar()
        .encode(
            x=alt.X("hour:O", title="day and hour", sort=None),
            y=alt.Y("sum(runs):Q", title="runs"),
            color=alt.Color("status:N", scale=ui.status_scale()),
            tooltip=["hour:O", "status:N", "sum(runs):Q"],
        )
    )
    st.altair_chart(chart, width="stretch")
    st.caption(" · ".join(f"{status}: {n}" for status, n in sorted(runs.items())))
else:
    st.info("No runs in the last 24 hours.")

st.subheader("Running now")
ui.runs_table(data["running"], key="running")
st.subheader("Recent runs")
ui.runs_table(data["recent"], key="recent")
