"""Workflows: each with its status, schedule, steps and last run."""

import pandas as pd
import streamlit as st

from cronium_prefect.dashboard import data_workflows

st.title("Workflows")
rows = data_workflows.workflows_list()
if not rows:
    st.info("No workflows yet: a `kind: workflow` document applied with `cronium apply`.")
    st.stop()
frame = pd.DataFrame(
    [
        {
            "workflow": f"workflow?name={r['name']}",
            "status": r["status"],
            "schedule": r["schedule"] or "manual",
            "steps": r["steps"],
            "last run": r["last_run"],
            "last status": r["last_status"],
        }
        for r in rows
    ]
)
st.dataframe(
    frame,
    hide_index=True,
    width="stretch",
    column_config={
        "workflow": st.column_config.LinkColumn("workflow", display_text=r"workflow\?name=(.*)")
    },
)
