"""Variables: global and per owner; secret values are never read, so never sent here."""

import pandas as pd
import streamlit as st

from cronium_prefect.access import Permission
from cronium_prefect.caps import NestedTooDeep
from cronium_prefect.dashboard import data_admin
from cronium_prefect.dashboard.api import DashboardError
from cronium_prefect.runtime_helpers.host import parse_text_value

st.title("Variables")
if "variables_done" in st.session_state:  # what the last change did, shown after its rerun
    st.success(st.session_state.pop("variables_done"))
rows = data_admin.variables()
if rows:
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
else:
    st.info("No variables yet.")

actor = st.session_state["actor"]
can_set = actor.may(Permission.set_variable)  # disabled here, refused in data_admin
can_secret = actor.may(Permission.manage)
set_col, delete_col = st.columns(2)
with set_col, st.form("set-variable", clear_on_submit=True):
    st.subheader("Set")
    key = st.text_input("Key", placeholder="API_URL")
    value = st.text_area("Value", help="JSON when it parses as JSON, else text.")
    owner = st.text_input("Owner", help="Empty: global.")
    secret = st.checkbox(
        "Secret",
        help="Masked in logs, the CLI and here." + ("" if can_secret else " Admins only."),
        disabled=not can_secret,
    )
    if st.form_submit_button("Save", disabled=not can_set):
        try:
            parsed = parse_text_value(value)
            data_admin.set_variable(key.strip(), parsed, owner.strip() or None, secret)
        except (DashboardError, NestedTooDeep) as exc:
            st.error(str(exc))
        else:
            st.session_state["variables_done"] = f"saved {key.strip()}"
            st.rerun()
with delete_col, st.form("delete-variable"):
    st.subheader("Delete")
    choices = [f"{r['owner']} / {r['key']}" for r in rows]
    choice = st.selectbox("Variable", choices)
    if st.form_submit_button("Delete", disabled=not choices or not can_set):
        owner_name, _, key_name = choice.partition(" / ")
        owner_value = None if owner_name == "(global)" else owner_name
        try:
            deleted = data_admin.delete_variable(key_name, owner_value)
        except DashboardError as exc:
            st.error(str(exc))
        else:
            done = f"deleted {key_name}" if deleted else f"{key_name} was already gone"
            st.session_state["variables_done"] = done
            st.rerun()
