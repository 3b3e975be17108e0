"""Users (admins only): who may sign in, with which role; every user's API tokens."""

import pandas as pd
import streamlit as st

from cronium_prefect.dashboard import data_access
from cronium_prefect.dashboard.api import DashboardError

ROLES = ["viewer", "operator", "admin"]

st.title("Users")
if "users_done" in st.session_state:
    st.success(st.session_state.pop("users_done"))
rows = data_access.user_rows()
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
add_col, change_col = st.columns(2)
with add_col, st.form("add-user", clear_on_submit=True):
    st.subheader("Add")
    name = st.text_input("Name")
    role = st.selectbox("Role", ROLES)
    password = st.text_input("Password", type="password", help="At least 8 characters.")
    if st.form_submit_button("Add user"):
        try:
            data_access.add_user(name.strip(), role, password)
        except DashboardError as exc:
            st.error(str(exc))
        else:
            st.session_state["users_done"] = f"added {name.strip()} ({role})"
            st.rerun()
with change_col, st.form("change-user"):
    st.subheader("Change")
    who = st.selectbox("User", [r["name"] for r in rows])
    new_role = st.selectbox("New role", ROLES, key="new_role")
    role_clicked = st.form_submit_button("Set role")
    delete_clicked = st.form_submit_button("Delete user")
    if who and (role_clicked or delete_clicked):
        try:
            if role_clicked:
                data_access.set_role(who, new_role)
            else:
                data_access.delete_user(who)
        except DashboardError as exc:
            st.error(str(exc))
        else:
            done = f"{who} is now {new_role}" if role_clicked else f"deleted {who}"
            st.session_state["users_done"] = done
            st.rerun()

st.subheader("API tokens")
tokens = data_access.token_rows(everyone=True)
if tokens:
    st.dataframe(pd.DataFrame(tokens), hide_index=True, width="stretch")
    with st.form("revoke-any"):
        chosen = st.selectbox("Token", [f"{t['id']} ({t['user']})" for t in tokens])
        if st.form_submit_button("Revoke"):
            try:
                data_access.revoke_token(chosen.split(" ")[0])
            except DashboardError as exc:
                st.error(str(exc))
            else:
                st.session_state["users_done"] = f"revoked {chosen}"
                st.rerun()
else:
    st.info("No API tokens yet.")
