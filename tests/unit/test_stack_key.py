"""The block encryption key of `cronium up`'s stack, kept apart from the database."""

from __future__ import annotations


def test_a_database_with_only_croniums_tables_still_gets_the_block_key_file(tmp_path, monkeypatch):
    """`cronium user add` before the first `cronium up` makes prefect.db with Cronium's
    tables only: the first start must still keep Prefect's block key out of it."""
    import asyncio
    import sqlite3

    from cronium_prefect.cli.api import stack_encryption_env
    from cronium_prefect.service.store import Store
    from cronium_prefect.settings import get_settings

    monkeypatch.setenv("CRONIUM_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_SERVER_ENCRYPTION_KEY", raising=False)
    get_settings.cache_clear()
    try:

        async def make():
            store = Store(get_settings().stack_database_url)
            await store.migrate()
            await store.close()

        asyncio.run(make())
        assert (tmp_path / "prefect.db").exists()
        env = stack_encryption_env()
        assert env["PREFECT_SERVER_ENCRYPTION_KEY"] == (tmp_path / "encryption.key").read_text()
        # A database Prefect has used keeps its own key (no key file made for it).
        (tmp_path / "encryption.key").unlink()
        with sqlite3.connect(tmp_path / "prefect.db") as db:
            db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        assert stack_encryption_env() == {}
        assert not (tmp_path / "encryption.key").exists()
    finally:
        get_settings.cache_clear()
