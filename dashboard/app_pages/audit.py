"""Audit (admins only): who did what, when, from where, and how it ended; newest first."""

from datetime import datetime, timedelta, timezone

import pandas as pd
import streamlit as st

from cronium_prefect.dashboard import data_access

WINDOWS = {"last hour": 1, "last day": 24, "last 7 days": 168, "last 30 days": 720, "all": None}

st.title("Audit")
window_col, user_col, target_col = st.columns([1, 1, 2])
window = window_col.selectbox("Since", list(WINDOWS), index=2)
user = user_col.text_input("User", help="A user's actions, and their tokens'.")
target = target_col.text_input("Event (or key, user, token)")
hours = WINDOWS[window]
since = datetime.now(timezone.utc) - timedelta(hours=hours) if hours else None
rows = data_access.audit_rows(since, user.strip(), target.strip())
if rows:
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(f"{len(rows)} entries (at most 2,000; narrow the filters for older ones).")
else:
    st.info("Nothing recorded for these filters.")
