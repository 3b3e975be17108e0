"""One run: status, timings, per-server results, output, logs, messages sent."""

import pandas as pd
import streamlit as st

from cronium_prefect.dashboard import data_runs, ui
from cronium_prefect.dashboard.api import NotFound

run_id = st.query_params.get("id") or st.text_input("Flow run id")
if not run_id:
    st.info("Open a run from the Runs page, or paste its id.")
    st.stop()
try:
    detail = data_runs.run_detail(run_id.strip())
except NotFound:
    st.error("No run with this id:")
    st.text(run_id)
    st.stop()
run, record = detail["run"], detail["record"] or {}

# The event's name and the trigger are checked in data_events.run_row: none of markdown.
st.title(f"{run['event'] or 'unknown event'}: {run['status']}")
st.text(f"Run {run['run_id']} ({run['run_name']})")
if run["event"]:
    st.markdown(
        f"trigger **{run['trigger'] or '?'}**"
        + (f" (the webhook of **{run['webhook']}**)" if run["webhook"] else "")
        + f" · [event page]({ui.event_link(run['event'])})"
    )
columns = st.columns(6)
columns[0].metric("status", run["status"])
columns[1].metric("exit code", "-" if record.get("exit_code") is None else record["exit_code"])
columns[2].metric("duration", f"{record.get('duration_s', run['duration_s'] or 0):.2f} s")
columns[3].metric("setup", f"{record['setup_s']:.2f} s" if "setup_s" in record else "-")
columns[4].metric("execution", f"{record['execution_s']:.2f} s" if "execution_s" in record else "-")
columns[5].metric("condition", str(record.get("condition", "-")))
st.caption(f"started {run['start'] or '-'} · ended {run['end'] or '-'}")
if record.get("error"):
    st.error("The run's error, as reported:")
    st.code(record["error"], language=None, wrap_lines=True)
if not record and run["status"] not in ("RUNNING", "PENDING"):
    st.warning("This run left no Cronium record (it crashed or was cancelled before the end).")

if record.get("servers"):
    st.subheader("Servers")
    st.dataframe(pd.DataFrame(record["servers"]), hide_index=True, width="stretch")

output_col, input_col = st.columns(2)
with output_col:
    st.subheader("Output")
    st.code(ui.as_json(record.get("output")), language="json")
with input_col:
    st.subheader("Input")
    st.code(ui.as_json(run.get("parameters_input")), language="json")

st.subheader("Messages")
if detail["messages"]:
    st.dataframe(pd.DataFrame(detail["messages"]), hide_index=True, width="stretch")
else:
    st.write("No messages were sent by this run.")

st.subheader("Log")
logs = detail["logs"]
if detail["logs_capped"]:
    st.warning(f"Showing the first {len(logs)} lines; `cronium logs {run['run_id']}` prints all.")
st.code("\n".join(f"{line['time'][11:23]} {line['message']}" for line in logs) or "(no lines)")
