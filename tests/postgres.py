"""A throwaway PostgreSQL cluster on 127.0.0.1 (Debian's postgresql package), for the tests
and benchmarks that need Prefect on PostgreSQL: initdb into a temporary directory as the
`postgres` user, trust auth on loopback only, removed afterwards."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_port


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder, or None when it is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_postgres(*command: str) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else [*command]


@dataclass
class Postgres:
    directory: Path
    port: int
    bin: Path

    @classmethod
    def start(cls) -> Postgres:
        bin_dir = binaries()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        # Directly under /tmp: the postgres user cannot enter root's private temp folders.
        directory = Path(tempfile.mkdtemp(prefix="cronium-pg-"))
        if os.geteuid() == 0:
            shutil.chown(directory, "postgres", "postgres")
        data = directory / "data"
        subprocess.run(
            _as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"),
            check=True,
            capture_output=True,
        )
        cluster = cls(directory, free_port(), bin_dir)
        options = (
            f"-p {cluster.port} -k {directory} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c fsync=off"
        )
        subprocess.run(
            _as_postgres(
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(directory / "postgres.log"),
                "-w",
                "start",
            ),
            check=True,
            capture_output=True,
        )
        return cluster

    def create_database(self, name: str) -> str:
        """Create a database; return its SQLAlchemy URL for Prefect."""
        subprocess.run(
            [
                str(self.bin / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                name,
            ],
            check=True,
            capture_output=True,
        )
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run(
            _as_postgres(
                str(self.bin / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "stop"
            ),
            capture_output=True,
        )
        shutil.rmtree(self.directory, ignore_errors=True)
