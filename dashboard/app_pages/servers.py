"""SSH servers: last health check, test now, events using each one, circuit breaker."""

import streamlit as st

from cronium_prefect.access import Permission
from cronium_prefect.dashboard import data_admin
from cronium_prefect.dashboard.api import DashboardError
from cronium_prefect.flows.servers import facts_text

st.title("Servers")
rows = data_admin.servers()
if not rows:
    st.info("No servers yet: add one with `cronium server add NAME --host H --user U ...`.")
    st.stop()
for row in rows:
    with st.container(border=True):
        st.subheader(row["name"])
        st.text(f"{row['address']} {row['description']}")
        check = row["last_check"]
        if check is None:
            st.text("Last check: never (in the last 7 days).")
        elif check.get("ok"):
            st.text(f"Last check {check['time'][:19]}Z: OK — {facts_text(check)}")
        else:
            st.text(f"Last check {check['time'][:19]}Z: FAILED — {check.get('error')}")
        st.text(f"Circuit breaker: {row['circuit']}")
        more = (
            f" and more (the first {len(row['events'])} are listed)" if row["events_capped"] else ""
        )
        st.text("Used by: " + (", ".join(row["events"]) or "no event") + more)
        if st.button(
            "Test now",
            key=f"test-{row['name']}",
            disabled=not st.session_state["actor"].may(Permission.run),
        ):
            try:
                facts = data_admin.test_server(row["name"])
            except DashboardError as exc:
                st.error("The test failed:")
                st.text(str(exc))
            else:
                st.success("The test passed:")
                st.text(facts_text(facts))
