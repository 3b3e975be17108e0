"""One event: definition, schedule, the live log of its current run, run history, and its
conditional actions as a graph."""

import pandas as pd
import streamlit as st

from cronium_prefect.dashboard import data_events, ui
from cronium_prefect.dashboard.api import NotFound
from cronium_prefect.dashboard.live_log import live_log

name = st.query_params.get("name") or st.text_input("Event name")
if not name:
    st.info("Open an event from the Events page, or type its name.")
    st.stop()
try:
    detail = data_events.event_detail(name)
except NotFound:
    st.error("No event by this name is deployed (see the Events page):")
    st.text(name)
    st.stop()
event = detail["event"]

st.title(name)
ui_url = ui.prefect_ui_url()
facts = [f"**{detail['status']}**", f"type `{event.get('type')}`"]
if event.get("run_location") == "remote":
    facts.append("on " + ", ".join(event.get("servers") or []))
if ui_url:
    facts.append(f"[open in Prefect]({ui_url}/deployments/deployment/{detail['deployment_id']})")
st.markdown(" · ".join(facts))
if event.get("description"):
    st.text(event["description"])

runs = detail["runs"]
current = (detail["current_run"] or {}).get("run_id")
following = ui.run_id_or_none(st.query_params.get("run")) or current
latest = following or (runs[0]["run_id"] if runs else None)
st.subheader("Current run" if following else "Latest run")
if latest:
    live_log(latest)
else:
    st.info("No runs yet.")

definition, schedule = st.columns([3, 2])
with definition:
    st.subheader("Definition")
    language = {"bash": "bash", "python": "python", "node": "javascript"}.get(event.get("type"))
    if event.get("script"):
        st.code(event["script"], language=language)
    elif event.get("http") or event.get("tool"):
        st.code(ui.as_json(event.get("http") or event.get("tool")), language="json")
    with st.expander("Whole definition"):
        st.code(ui.as_json(event), language="json")
with schedule:
    st.subheader("Schedule")
    if not detail["schedules"]:
        st.write("No schedule: runs on demand or as an action of another event.")
    for item in detail["schedules"]:
        inactive = "" if item["active"] else " (inactive: the event is not active)"
        st.text(item["text"] + inactive)
        if item["next"]:
            st.markdown("Next runs:\n" + "\n".join(f"- {t}" for t in item["next"]))

st.subheader("Conditional actions")
targets = event.get("actions") or []
if targets or detail["chained_from"]:
    lines = ["digraph {", "rankdir=LR;", f'"{name}" [shape=box, style=bold];']
    for source in detail["chained_from"]:
        lines.append(f'"{source}" [shape=box]; "{source}" -> "{name}" [label="run_event"];')
    for index, action in enumerate(targets):
        on = action.get("on")
        label = on if isinstance(on, str) else "/".join(sorted(on)) if on else "?"
        if action.get("run_event"):
            lines.append(f'"{action["run_event"]}" [shape=box];')
            lines.append(f'"{name}" -> "{action["run_event"]}" [label="{label}"];')
        elif action.get("send_message"):
            node = f"message {index}: {action['send_message'].get('block')}"
            lines.append(f'"{node}" [shape=note];')
            lines.append(f'"{name}" -> "{node}" [label="{label}"];')
    lines.append("}")
    st.graphviz_chart("\n".join(lines))
    if detail["chained_from_capped"]:
        st.caption(
            f"Only the first {len(detail['chained_from'])} events that start this one are drawn."
        )
else:
    st.write("None: no actions, and no event starts this one.")

st.subheader("Run history")
if runs:
    ui.durations_chart(runs)
    table = pd.DataFrame(
        [
            {
                "run": ui.run_link(r["run_id"]),
                "status": r["status"],
                "trigger": r["trigger"],
                "start": r["start"],
                "duration (s)": r["duration_s"],
                "exit code": r["exit_code"],
                "condition": r["condition"],
                "output": None if r["output"] is None else ui.as_json(r["output"])[:500],
            }
            for r in runs
        ]
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={"run": st.column_config.LinkColumn("run", display_text="open")},
    )
    st.caption("Outputs are cut at 500 characters here; a run's page shows all of it.")
