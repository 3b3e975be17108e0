"""`cronium init`: a starter folder of events for a user without a checkout."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from .common import fail_usage, out

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command()(init)


def init(
    directory: Annotated[
        Path, typer.Argument(help="Folder to write events/ into (created if missing).")
    ] = Path("."),
) -> None:
    """Write the example events into DIRECTORY/events, to edit and `cronium up` or apply."""
    from cronium_prefect.examples import EVENTS

    target = directory / "events"
    sources = sorted(p for p in EVENTS.rglob("*") if p.is_file() and _shipped(p))
    taken = [target / p.relative_to(EVENTS) for p in sources]
    existing = [str(path) for path in taken if path.exists() or path.is_symlink()]
    if existing:  # nothing written: a user's own file is never overwritten
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise fail_usage(f"{existing[0]}{more} already exists; nothing was written")
    for source, path in zip(sources, taken, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
    out.print(
        f"wrote {len(taken)} files to {target}:\n"
        + "".join(f"  {path.relative_to(target)}\n" for path in taken)
        + f"next: cd {directory} && cronium up   (or: cronium apply {target})",
        highlight=False,
        soft_wrap=True,
    )


def _shipped(path: Path) -> bool:
    return "__pycache__" not in path.parts and path.suffix != ".pyc"
