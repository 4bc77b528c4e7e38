"""A real PostgreSQL server for the tests: Debian's ``postgresql`` binaries, a fresh
cluster in a temp folder, run as an unprivileged user, on a free 127.0.0.1 port, with
password authentication (so the tests can check the password never shows).

``.ci/run`` installs the package when it is missing; where it cannot be, ``start``
raises ``Unavailable`` with the reason and the tests that need it skip with that
reason.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

USER = "qabot"
PASSWORD = "pg-test-s3cret-7f2a"  # checked absent from every log and message
SERVICE_USER = "postgres"  # Debian's package creates it; initdb refuses to run as root


class Unavailable(RuntimeError):
    """No PostgreSQL server can be started here (the reason is the message)."""


def _bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(
        f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise Unavailable(f"PostgreSQL's {name} is not installed (Debian: apt-get install "
                          "postgresql; .ci/run does it)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(folder: Path) -> Iterator[str]:
    """Start a cluster under ``folder``; yields its URL (with the password)."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    folder.mkdir(parents=True, exist_ok=True)
    data, pwfile = folder / "data", folder / "pw"
    pwfile.write_text(PASSWORD + "\n")
    as_user: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if not runuser:
            raise Unavailable("running as root without runuser: cannot start PostgreSQL "
                              "as an unprivileged user")
        try:
            shutil.chown(folder, SERVICE_USER)
            shutil.chown(pwfile, SERVICE_USER)
        except (LookupError, OSError) as exc:
            raise Unavailable(f"no {SERVICE_USER!r} user to run PostgreSQL as ({exc})") from None
        as_user = [runuser, "-u", SERVICE_USER, "--"]
        # the folder's parents must be searchable by that user
        for parent in folder.parents:
            with contextlib.suppress(OSError):
                parent.chmod(parent.stat().st_mode | 0o001)
    port = _free_port()
    done = subprocess.run([*as_user, initdb, "-D", str(data), "-U", USER, "-A",
                           "scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                           "--no-locale"], capture_output=True, text=True)
    if done.returncode != 0:
        raise Unavailable(f"initdb failed: {done.stderr.strip()[-300:]}")
    options = (f"-p {port} -c listen_addresses=127.0.0.1 -k {folder} "
               "-c max_connections=200 -c fsync=off")
    started = subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-l",
                              str(folder / "log"), "-w", "-t", "60", "start"],
                             capture_output=True, text=True)
    if started.returncode != 0:
        log = (folder / "log").read_text(errors="replace")[-500:] \
            if (folder / "log").exists() else ""
        raise Unavailable(f"PostgreSQL did not start: {started.stderr.strip()} {log}")
    try:
        url = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/postgres"
        _wait(url)
        yield url
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)


def _wait(url: str) -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def fresh_database(url: str, name: str) -> str:
    """A new empty database on the server at ``url``; its URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name
