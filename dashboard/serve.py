"""`python -m cronium_prefect.dashboard.serve run APP [options]`: `streamlit run`, with the
modules every page needs imported before the first visitor arrives.

Streamlit imports a page's modules on its first run, in the visitor's request: Prefect's
client, pandas and altair cost the first visitor ~3 s of a cold ~5 s render (measured by
bench/dashboard_events.py). Importing them here moves that to start-up.
"""

from __future__ import annotations


def main() -> None:
    import altair  # noqa: F401
    import pandas  # noqa: F401
    from streamlit.web.cli import main as streamlit_main

    from cronium_prefect.dashboard import data_admin, data_events, data_runs, live_log, ui  # noqa: F401

    streamlit_main(prog_name="streamlit")


if __name__ == "__main__":
    main()
