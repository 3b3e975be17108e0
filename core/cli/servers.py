"""`cronium server add | test | list`: SSH servers stored as cronium-ssh-server blocks."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr, ValidationError
from rich.table import Table
from rich.text import Text

from cronium_prefect.access import AuditAction
from cronium_prefect.errors import ConnectionFailed, CroniumError, HostKeyRejected
from cronium_prefect.event import NAME_PATTERN
from cronium_prefect.prefect_adapter import load_block_sync, save_block_sync

from .common import JsonOption, audit, err, fail, fail_usage, out, print_json, visible

__all__ = ["servers_app"]

servers_app = typer.Typer(help="SSH servers remote events run on.", no_args_is_help=True)


def _load(name: str):
    from cronium_prefect.blocks import SSHServer

    try:
        return load_block_sync(SSHServer, name)
    except ValueError:
        raise fail_usage(f"no server named {name!r} (see `cronium server list`)") from None


@servers_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Server name, used in events' `servers`.")],
    host: Annotated[str, typer.Option("--host", help="Host name or address.")],
    user: Annotated[str, typer.Option("--user", help="User the scripts run as.")],
    port: Annotated[int, typer.Option("--port", help="SSH port.")] = 22,
    key_file: Annotated[Path | None, typer.Option("--key-file", help="Private key file.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    trust_host_key: Annotated[
        bool, typer.Option("--trust-host-key", help="Record the host key the server presents.")
    ] = False,
    host_key: Annotated[
        str | None, typer.Option("--host-key", help="Pin this key: `TYPE BASE64` or `SHA256:...`.")
    ] = None,
    connect_timeout: Annotated[float, typer.Option(help="Seconds to wait for a connection.")] = 10,
    description: Annotated[str, typer.Option(help="What the server is for.")] = "",
) -> None:
    """Add (or update) a server: connects once, checks its host key and the credentials."""
    from cronium_prefect.blocks import SSHServer
    from cronium_prefect.executors.ssh_pool import connect

    if not re.fullmatch(NAME_PATTERN, name):  # fullmatch: `$` alone lets a final newline in
        raise fail_usage(f"server name {name!r}: use 1-100 of a-z, 0-9 and '-'")
    if (key_file is None) == (not password_stdin):
        raise fail_usage("give exactly one of --key-file or --password-stdin")
    try:
        key_text = key_file.read_text() if key_file else None
    except OSError as exc:
        raise fail_usage(f"--key-file {key_file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise fail_usage(f"--key-file {key_file}: not a text key file") from None
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    try:
        server = SSHServer(
            host=host,
            port=port,
            username=user,
            host_key=host_key,
            private_key=SecretStr(key_text) if key_text else None,
            password=SecretStr(password) if password else None,
            connect_timeout=connect_timeout,
            description=description,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise fail_usage(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    try:
        transport = connect(server, trust_unknown=trust_host_key and host_key is None)
    except HostKeyRejected as exc:
        raise fail(str(exc)) from None
    except ConnectionFailed as exc:
        raise fail(str(exc)) from None
    seen = transport.get_remote_server_key()
    transport.close()
    if server.host_key is None:
        server.host_key = f"{seen.get_name()} {seen.get_base64()}"
    save_block_sync(server, name, overwrite=True)
    audit(AuditAction.server_add, name, address=server.address)
    err.print(
        f"saved server {name!r} ({server.address}), host key {seen.get_name()} "
        f"{server.pinned_fingerprint()}",
        highlight=False,
    )


@servers_app.command("test")
def test(name: str, as_json: JsonOption = False) -> None:
    """Connect and report OS, CPUs, memory, uptime, login shell, python3 and node, free disk
    for runs and whether it offers SFTP (recorded for the dashboard)."""
    from cronium_prefect.flows.servers import check_server, facts_text

    try:
        facts = check_server(name)
    except (ConnectionFailed, HostKeyRejected) as exc:
        raise fail(str(exc)) from None
    except CroniumError as exc:
        raise fail_usage(str(exc)) from None
    if as_json:
        print_json(facts)
        return
    out.print(
        f"{name}: {facts_text(facts)}",
        highlight=False,
        markup=False,  # the OS name is the server's to choose: never read as markup
    )


@servers_app.command("delete")
def delete(name: str) -> None:
    """Delete a server (events that name it fail until it is added again)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from cronium_prefect.blocks import SSHServer

    slug = SSHServer.get_block_type_slug()
    with get_client(sync_client=True) as client:
        try:
            document = client.read_block_document_by_name(name, slug, include_secrets=False)
        except ObjectNotFound:
            audit(AuditAction.server_delete, name, "refused", error="no such server")
            raise fail_usage(f"no server named {name!r} (see `cronium server list`)") from None
        client.delete_block_document(document.id)
    audit(AuditAction.server_delete, name)
    err.print(f"deleted server {name}", highlight=False)


@servers_app.command("list")
def list_servers(as_json: JsonOption = False) -> None:
    """List the servers and their pinned host keys."""
    from prefect.client.orchestration import get_client

    from cronium_prefect.blocks import SSHServer
    from cronium_prefect.blocks.documents import of_type, read_documents_sync

    with get_client(sync_client=True) as client:
        documents = read_documents_sync(client, of_type(SSHServer.get_block_type_slug()))
    rows = []
    for document in documents:
        data = document["data"]
        server = SSHServer.model_construct(
            **{k: v for k, v in data.items() if k in ("host", "port", "username", "host_key")}
        )
        rows.append(
            {
                "name": document["name"],
                "host": data.get("host"),
                "port": data.get("port"),
                "user": data.get("username"),
                "host_key": server.pinned_fingerprint(),
                "description": data.get("description", ""),
            }
        )
    if as_json:
        print_json(rows)
        return
    table = Table("name", "address", "host key", "description")
    for row in rows:
        cells = (
            row["name"],
            f"{row['user']}@{row['host']}:{row['port']}",
            row["host_key"] or "-",
            row["description"],
        )
        table.add_row(*(Text(visible(str(cell))) for cell in cells))  # text, not markup
    out.print(table)
