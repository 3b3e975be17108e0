"""The Streamlit dashboard over the Prefect API."""
