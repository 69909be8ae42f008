"""A throwaway PostgreSQL cluster for tests, from Debian's binaries (`make test` installs them)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _as_db_user(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; Debian's package creates the postgres user.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """Start a private cluster on a free loopback port; yield its admin URL; remove it after."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError(
            "PostgreSQL server binaries not found: `make test` installs Debian's postgresql "
            "package (apt-get install postgresql)"
        )
    root = Path(tempfile.mkdtemp(prefix="quant-genai-pg-"))
    data = root / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    try:
        subprocess.run(
            _as_db_user([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
            check=True,
            capture_output=True,
        )
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=on"
        subprocess.run(
            _as_db_user(
                [pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"]
            ),
            check=True,
            capture_output=True,
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_db_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(admin_url: str) -> str:
    """A new empty database on the cluster; its URL."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return admin_url.rsplit("/", 1)[0] + "/" + name
