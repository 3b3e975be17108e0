"""Runs: filter by event, status, time range and trigger; newest first, a page at a time."""

import streamlit as st

from cronium_prefect.dashboard import data_runs, ui

RANGES = {"last hour": 1, "last 24 h": 24, "last 7 days": 24 * 7, "last 30 days": 24 * 30}
RANGES["all time"] = 0

st.title("Runs")
event_col, status_col, range_col, trigger_col, size_col = st.columns([3, 1, 1, 1, 1])
event = event_col.text_input("Event", placeholder="part of an event name")
status = status_col.selectbox("Status", ["", *ui.STATUS_COLOURS], format_func=ui.any_value)
window = range_col.selectbox("Started", list(RANGES), index=1)
trigger = trigger_col.selectbox("Trigger", ["", *data_runs.TRIGGERS], format_func=ui.any_value)
page_size = size_col.selectbox("Per page", [50, 100, 200])
page = int(st.session_state.get("runs_page", 1))
data = data_runs.runs_page(event.strip(), status, RANGES[window], trigger, page, page_size)
if data["pages"] and page > data["pages"]:
    st.session_state["runs_page"] = page = 1
    data = data_runs.runs_page(event.strip(), status, RANGES[window], trigger, 1, page_size)
st.caption(f"{data['total']} runs · page {page} of {max(data['pages'], 1)}")
ui.pager("runs_page", page, data["pages"])
ui.runs_table(data["rows"], key="runs")
