"""A private, throw-away PostgreSQL server for measuring Dagster's instance storage on Postgres.

Only used when the PostgreSQL server binaries are installed (``initdb``/``postgres`` on the PATH or under
``/usr/lib/postgresql/*/bin``). Runs as the ``postgres`` user when we are root (PostgreSQL refuses root),
on a free loopback port, with its data in a scratch directory; stopped by its process-group id.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import Child, free_port, start_child


def find_binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root and runuser is missing: cannot start PostgreSQL as 'postgres'")
    return [runuser, "-u", "postgres", "--", *args]


@contextlib.contextmanager
def private_postgres() -> Iterator[str | None]:
    """Yield a ``postgresql://`` URL of a fresh database, or None when PostgreSQL is not installed."""
    binaries = find_binaries()
    if binaries is None:
        yield None
        return
    scratch = Path(tempfile.mkdtemp(prefix="energy-bench-pg-"))
    data = scratch / "pgdata"
    data.mkdir()
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(scratch, user.pw_uid, user.pw_gid)
        os.chown(data, user.pw_uid, user.pw_gid)
    subprocess.run(_as_postgres([str(binaries / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres",
                                 "--no-sync", "-E", "UTF8"]), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.STDOUT)
    port = free_port()
    child: Child = start_child(
        _as_postgres([str(binaries / "postgres"), "-D", str(data), "-p", str(port), "-k", str(data),
                      "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=50"]),
        dict(os.environ), scratch / "postgres.log", "postgres", cwd=scratch)
    try:
        deadline = time.monotonic() + 30
        while True:
            probe = subprocess.run(_as_postgres([str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                                                 "-U", "postgres", "dagster"]),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if probe.returncode == 0:
                break
            if child.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start: {child.log_tail()}")
            time.sleep(0.3)
        yield f"postgresql://postgres@127.0.0.1:{port}/dagster"
    finally:
        child.stop()
        shutil.rmtree(scratch, ignore_errors=True)
