"""Counts the reliability tests print and keep (tests/artifacts/reliability/, not committed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FOLDER = Path(__file__).resolve().parents[1] / "artifacts" / "reliability"


def report(name: str, counts: dict[str, Any]) -> None:
    FOLDER.mkdir(parents=True, exist_ok=True)
    (FOLDER / f"{name}.json").write_text(json.dumps(counts, indent=2))
    print(f"{name}: {json.dumps(counts)}")
