"""The dashboard checks sign-ins only against the Prefect server's database, which it
must be told (the test server's API is not `cronium up`'s): each dashboard module gets
Cronium's tables in a file of its own, with no users (an open dashboard) unless the
module adds some."""

from __future__ import annotations

import os

import pytest
import streamlit as st

from cronium_prefect.service.store import DATABASE_ENV


@pytest.fixture(scope="module", autouse=True)
def _dashboard_database(tmp_path_factory):
    before = os.environ.get(DATABASE_ENV)
    folder = tmp_path_factory.mktemp("dashboard-db")
    os.environ[DATABASE_ENV] = f"sqlite+aiosqlite:///{folder / 'cronium.db'}"
    st.cache_resource.clear()
    yield
    if before is None:
        os.environ.pop(DATABASE_ENV, None)
    else:
        os.environ[DATABASE_ENV] = before
    st.cache_resource.clear()
