"""The dashboard as one ASGI app (`streamlit run` finds `app` here): Streamlit's pages
(app.py) and the sign-in routes (signin.py) on the same address."""

from pathlib import Path

import streamlit as st

from cronium_prefect.dashboard.signin import ROUTES

app = st.App(str(Path(__file__).with_name("app.py")), routes=ROUTES)
