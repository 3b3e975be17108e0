"""Events: search and filter (by the API, a page at a time), run now with input, pause and
resume."""

import json

import pandas as pd
import streamlit as st

from cronium_prefect.access import Permission
from cronium_prefect.caps import NestedTooDeep, load_json
from cronium_prefect.dashboard import data_admin, data_events, ui

st.title("Events")
left, middle, right = st.columns([3, 1, 1])
search = left.text_input("Search by name", placeholder="part of a name")
status = middle.selectbox(
    "Status", ["", "active", "paused", "draft", "archived"], format_func=ui.any_value
)
type_ = right.selectbox(
    "Type", ["", "bash", "python", "node", "http", "tool"], format_func=ui.any_value
)
tag_col, server_col, owner_col, size_col = st.columns(4)
tag = tag_col.text_input("Tag")
server = server_col.text_input("Server")
owner = owner_col.text_input("Owner")
page_size = size_col.selectbox("Per page", [25, 50, 100])

page = int(st.session_state.get("events_page", 1))
data = data_events.events_page(
    search.strip(), status, tag.strip(), type_, server.strip(), owner.strip(), page, page_size
)
if data["pages"] and page > data["pages"]:  # the filters shrank the list
    st.session_state["events_page"] = page = 1
    data = data_events.events_page(
        search.strip(), status, tag.strip(), type_, server.strip(), owner.strip(), 1, page_size
    )
st.caption(f"{data['total']} events · page {page} of {max(data['pages'], 1)}")
ui.pager("events_page", page, data["pages"])

rows = data["rows"]
if not rows:
    st.info("No events match." if data["total"] == 0 else "This page is empty.")
    st.stop()
frame = pd.DataFrame(
    [
        {
            "event": ui.event_link(r["name"]),
            "status": r["status"],
            "type": r["type"],
            "schedule": r["schedule"],
            "next run": r["next_run"],
            "last run": r["last_run"],
            "last status": r["last_status"],
            "success": r["success_rate"],
            "of runs": r["runs_counted"],
            "tags": ", ".join(r["tags"]),
            "servers": ", ".join(r["servers"]),
            "owner": r["owner"],
        }
        for r in rows
    ]
)
st.dataframe(
    frame,
    hide_index=True,
    width="stretch",
    column_config={
        "event": st.column_config.LinkColumn("event", display_text=r"event\?name=(.*)"),
        "success": st.column_config.ProgressColumn(
            "success", help="Of the last runs", min_value=0.0, max_value=1.0, format="percent"
        ),
    },
)

st.subheader("Run or change an event")
name = st.selectbox("Event", [r["name"] for r in rows], key="action_event")
raw_input = st.text_area(
    "Input (JSON)", value="{}", key="run_input", help="What the script reads with input()."
)
run_col, pause_col, resume_col, _ = st.columns([1, 1, 1, 5])
actor = st.session_state["actor"]  # buttons its role may not use are disabled (and refused)
if run_col.button("Run now", type="primary", disabled=not actor.may(Permission.run, name)):
    try:
        value = load_json(raw_input, "the input") if raw_input.strip() else None
    except NestedTooDeep as exc:
        st.error(f"{exc}.")
    except json.JSONDecodeError as exc:
        st.error(f"Input is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.")
    else:
        run_id = data_admin.run_now(name, value)
        st.success(f"Started {name}: flow run {run_id}")
        st.page_link(
            "app_pages/event.py",
            label=f"Follow the run of {name}",
            query_params={"name": name, "run": run_id},
        )
if pause_col.button("Pause", disabled=not actor.may(Permission.pause)):
    data_admin.set_status(name, "paused")
    st.success(f"{name}: paused")
if resume_col.button("Resume", disabled=not actor.may(Permission.pause)):
    data_admin.set_status(name, "active")
    st.success(f"{name}: active")
