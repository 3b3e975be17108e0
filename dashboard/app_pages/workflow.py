"""One workflow: its steps as a graph coloured by the latest run (live while it runs),
each step linking to its run, and the run history with durations."""

import pandas as pd
import streamlit as st

from cronium_prefect.dashboard import data_workflows, ui
from cronium_prefect.dashboard.api import NotFound
from cronium_prefect.event import is_event_name
from cronium_prefect.workflow import inline_event_name

name = st.query_params.get("name") or st.text_input("Workflow name")
if not name:
    st.info("Open a workflow from the Workflows page, or type its name.")
    st.stop()
if not is_event_name(name):
    st.error("Not a workflow name (a-z, 0-9 and '-'):")
    st.text(name)
    st.stop()


def graph(definition: dict, steps: dict) -> str:
    """The steps as DOT: a box per step, filled with its status's colour, linking to its
    run; an edge per need, labelled with its condition unless success. Names are
    validated (a-z, 0-9, '-'): safe in DOT."""
    lines = ["digraph {", "rankdir=LR;", 'node [shape=box, style="rounded,filled"];']
    for step in definition.get("steps") or []:
        state = steps.get(step["name"], {})
        status = state.get("status", "PENDING")
        colour = data_workflows.STEP_COLOURS.get(status, "#dddddd")
        font = "white" if status in ("SUCCESS", "FAILURE", "RUNNING", "CANCELLED") else "black"
        label = f"{step['name']}\\n{status.lower()}"
        if step.get("for_each") is not None:
            label += f" (x{len(state.get('run_ids') or [])})"
        link = f', URL="{ui.run_link(state["run_ids"][0])}"' if state.get("run_ids") else ""
        lines.append(
            f'"{step["name"]}" [label="{label}", fillcolor="{colour}", fontcolor="{font}"{link}];'
        )
        for need in step.get("needs") or []:
            upstream, on = (
                (need, "success")
                if isinstance(need, str)
                else (need["step"], need.get("on", "success"))
            )
            style = ', style="dashed"' if step.get("join") == "any" else ""
            text = "" if on == "success" else f'label="{on}"'
            lines.append(f'"{upstream}" -> "{step["name"]}" [{text}{style}];')
    lines.append("}")
    return "\n".join(lines)


try:
    detail = data_workflows.workflow_detail(name)
except NotFound:
    st.error("No workflow by this name is deployed (see the Workflows page):")
    st.text(name)
    st.stop()
definition = detail["workflow"]
st.title(name)
facts = [f"**{detail['status']}**", f"{len(definition.get('steps') or [])} steps"]
facts.append(detail["schedule"] or "runs on demand")
facts.append(f"on failure: {definition.get('on_failure', 'fail_fast')}")
st.markdown(" · ".join(facts))
if definition.get("description"):
    st.text(definition["description"])

latest = detail["latest"]
live = latest is not None and latest["status"] in ("RUNNING", "PENDING")


@st.fragment(run_every=2 if live else None)
def steps_view() -> None:
    current = data_workflows.workflow_detail(name) if live else detail
    run = current["latest"]
    st.subheader("Latest run" + (f": {run['status']}" if run else ""))
    if run:
        st.markdown(f"[open the run]({ui.run_link(run['run_id'])}) · started {run['start'] or '-'}")
    st.graphviz_chart(graph(definition, current["steps"]))
    rows = [
        {
            "step": step["name"],
            "event": step.get("event") or inline_event_name(name, step["name"]),
            "status": current["steps"].get(step["name"], {}).get("status", "PENDING"),
            "runs": len(current["steps"].get(step["name"], {}).get("run_ids") or []),
            "run": (
                ui.run_link(current["steps"][step["name"]]["run_ids"][0])
                if current["steps"].get(step["name"], {}).get("run_ids")
                else None
            ),
            "duration (s)": current["steps"].get(step["name"], {}).get("duration_s"),
        }
        for step in definition.get("steps") or []
    ]
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        width="stretch",
        column_config={"run": st.column_config.LinkColumn("run", display_text="open")},
    )


steps_view()

st.subheader("Runs")
runs = detail["runs"]
if runs:
    ui.durations_chart(runs)
ui.runs_table(runs, key="workflow_runs")
