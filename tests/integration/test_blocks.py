"""The blocks as Prefect sees them: registration, described fields, secrets masked."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from prefect.client.orchestration import get_client

from cronium_prefect.blocks import CroniumVariable, SSHServer
from cronium_prefect.blocks.variable_store import get_variable_store
from cronium_prefect.variables import document_name


@pytest.mark.parametrize("block", [SSHServer, CroniumVariable])
def test_every_block_field_is_described(block):
    for name, field in block.model_fields.items():
        assert field.description, f"{block.__name__}.{name} has no description"


def test_prefect_block_register_finds_both_block_types(prefect_api):
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "cronium_prefect.blocks"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with get_client(sync_client=True) as client:
        slugs = {t.slug for t in client.read_block_types()}
    assert {"cronium-ssh-server", "cronium-variable"} <= slugs


def test_secret_values_are_masked_in_the_api_without_include_secrets(prefect_api):
    get_variable_store().set("API_MASK", "masked-value-77", secret=True, owner="bob@example.com")
    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name(
            document_name("API_MASK", "bob@example.com"), "cronium-variable", include_secrets=False
        )
    assert "masked-value-77" not in str(document.data)
    assert document.data["owner"] == "bob@example.com"
    entry = get_variable_store().get("API_MASK", owner="bob@example.com")
    assert entry.value == "masked-value-77" and entry.secret


def test_owner_scope_is_read_first_then_global(prefect_api):
    store = get_variable_store()
    store.set("SCOPED", "global value")
    store.set("SCOPED", "carol's value", owner="carol")
    assert store.visible("carol").values["SCOPED"] == "carol's value"
    assert store.visible("dave").values["SCOPED"] == "global value"
    assert store.visible(None).values["SCOPED"] == "global value"


def test_more_variables_than_a_page_are_all_read_and_the_read_ends(prefect_api, monkeypatch):
    """Prefect's by-type listing ignores paging: reading page by page must use the filter
    endpoint, or a store with a page's worth of variables loops forever."""
    from cronium_prefect.blocks import documents

    monkeypatch.setattr(documents, "PAGE", 5)
    store = get_variable_store()
    keys = [f"PAGED_{i:02d}" for i in range(12)]
    for key in keys:
        store.set(key, key.lower(), owner="pager")
    entries = [e for e in store.entries() if e.owner == "pager"]
    assert sorted(e.key for e in entries) == keys


@pytest.mark.parametrize("scope", [None, "carol@example.com"], ids=["global", "owner"])
def test_a_runs_write_keeps_a_variable_made_secret_while_it_ran(prefect_api, scope):
    """The run read the variables (no secret then); someone made it secret meanwhile; the
    run's write must not save it in clear."""
    store = get_variable_store()
    key = f"MIDRUN_{uuid.uuid4().hex[:8].upper()}"
    store.set(key, "plain-at-start")
    started_with = store.visible(scope)
    assert key not in started_with.secret_keys
    store.set(key, "now-a-secret", secret=True)  # `cronium var set KEY --secret` meanwhile
    store.write({key: "written-by-the-run"}, scope, started_with.secret_keys)
    entry = store.get(key, scope)
    assert entry.value == "written-by-the-run" and entry.secret
