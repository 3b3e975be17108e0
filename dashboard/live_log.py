"""The live log of one run: new lines appear as they reach the API, until the run ends."""

from __future__ import annotations

import streamlit as st

from cronium_prefect.dashboard import data_runs

__all__ = ["live_log"]

SHOWN = 500  # lines on screen; the run's page has them all
QUIET_POLLS = 3  # the last lines arrive in Prefect's 2 s log batches after the run ends


def live_log(run_id: str) -> None:
    state = st.session_state.setdefault(
        f"live-log-{run_id}", {"offset": 0, "lines": [], "status": "PENDING", "quiet": -1}
    )

    @st.fragment(run_every=None if state["quiet"] >= QUIET_POLLS else 1.0)
    def follow() -> None:
        if state["quiet"] < QUIET_POLLS:
            got = data_runs.log_lines(run_id, state["offset"])
            state["lines"] += [line["message"] for line in got["lines"]]
            state["offset"] += len(got["lines"])
            state["status"] = got["status"]
            if got["final"]:
                state["quiet"] = 0 if got["lines"] else state["quiet"] + 1
                if state["quiet"] >= QUIET_POLLS:
                    st.rerun()  # the whole page: history and outputs now include this run
        ended = state["quiet"] >= QUIET_POLLS
        st.markdown(
            f"Run [{run_id}](run?id={run_id}): **{state['status']}**"
            + ("" if ended else " · following the log")
        )
        lines = state["lines"]
        if len(lines) > SHOWN:
            st.caption(f"the last {SHOWN} of {len(lines)} lines; the run's page has all of them")
        st.code("\n".join(lines[-SHOWN:]) or "(no lines yet)", language=None)

    follow()
