"""My tokens: API tokens of the signed-in user, for webhooks and GET /runs/ID."""

import pandas as pd
import streamlit as st

from cronium_prefect.dashboard import data_access
from cronium_prefect.dashboard.api import DashboardError

st.title("My tokens")
if "token_text" in st.session_state:
    st.success("Your new token; it is not shown again:")
    st.code(st.session_state.pop("token_text"), language=None)
rows = data_access.token_rows(everyone=False)
if rows:
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
else:
    st.info("No tokens yet.")
create_col, revoke_col = st.columns(2)
with create_col, st.form("create-token", clear_on_submit=True):
    st.subheader("Create")
    scopes = st.text_input(
        "Scopes", value="read", help="Comma-separated: read, run:EVENT (a name or a glob)."
    )
    days = st.number_input("Expires after (days, 0: never)", min_value=0, max_value=3650, value=90)
    name = st.text_input("What it is for")
    if st.form_submit_button("Create token"):
        try:
            text = data_access.create_token(
                [s.strip() for s in scopes.split(",") if s.strip()], int(days) or None, name
            )
        except DashboardError as exc:
            st.error(str(exc))
        else:
            st.session_state["token_text"] = text
            st.rerun()
with revoke_col, st.form("revoke-own"):
    st.subheader("Revoke")
    chosen = st.selectbox("Token", [r["id"] for r in rows if r["state"] == "active"])
    if st.form_submit_button("Revoke", disabled=not chosen):
        try:
            data_access.revoke_token(chosen)
        except DashboardError as exc:
            st.error(str(exc))
        else:
            st.rerun()
