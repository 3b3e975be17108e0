"""The live log of one run: new lines appear as they reach the API, until the run ends.

Lines are asked for by time, not by position: the worker and the flow ship logs in
separate batches, so a line can arrive after later ones. Each poll asks again from a
little before the newest line seen and skips the ids it already showed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import streamlit as st

from cronium_prefect.dashboard import data_runs
from cronium_prefect.dashboard.api import DashboardError

__all__ = ["live_log"]

SHOWN = 500  # lines on screen; the run's page has them all
QUIET_POLLS = 5  # after the run ends, polls without a new line before the log is complete
OVERLAP = timedelta(seconds=10)  # how far back each poll looks for late lines


def _poll(run_id: str, state: dict) -> None:
    since = None
    if state["newest"] is not None:
        since = (datetime.fromisoformat(state["newest"]) - OVERLAP).isoformat()
    got = data_runs.log_lines(run_id, since)
    fresh = [line for line in got["lines"] if line["id"] not in state["seen"]]
    for line in fresh:
        state["seen"][line["id"]] = line["time"]
        state["newest"] = max(state["newest"] or line["time"], line["time"])
    state["tail"] = (state["tail"] + [line["message"] for line in fresh])[-SHOWN:]
    state["total"] += len(fresh)
    state["status"] = got["status"]
    if state["newest"] is not None:  # ids older than any future poll can return
        horizon = (datetime.fromisoformat(state["newest"]) - 3 * OVERLAP).isoformat()
        state["seen"] = {i: t for i, t in state["seen"].items() if t >= horizon}
    if got["final"]:
        state["quiet"] = 0 if fresh else state["quiet"] + 1


def live_log(run_id: str) -> None:
    state = st.session_state.setdefault(
        f"live-log-{run_id}",
        {"seen": {}, "newest": None, "tail": [], "total": 0, "status": "PENDING", "quiet": -1},
    )

    @st.fragment(run_every=None if state["quiet"] >= QUIET_POLLS else 1.0)
    def follow() -> None:
        if state["quiet"] < QUIET_POLLS:
            try:
                _poll(run_id, state)
            except DashboardError as exc:
                st.warning(f"The log cannot be followed: {exc}")
                state["quiet"] = QUIET_POLLS
                return
            if state["quiet"] >= QUIET_POLLS:
                st.rerun()  # the whole page: history and outputs now include this run
        ended = state["quiet"] >= QUIET_POLLS
        st.markdown(
            f"Run [{run_id}](run?id={run_id}): **{state['status']}**"
            + ("" if ended else " · following the log")
        )
        if state["total"] > SHOWN:
            st.caption(
                f"the last {SHOWN} of {state['total']} lines; the run's page has all of them"
            )
        st.code("\n".join(state["tail"]) or "(no lines yet)", language=None)

    follow()
