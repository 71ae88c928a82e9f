"""What each pytest process of a run owns, so that several can run at once (pytest-xdist's ``-n``).

The real-process tiers run their tests in parallel (``.ci/run``): most of a system test's time is
spent waiting on processes that start, pace and time out, not on the CPU. Two test processes must
then never share a Redis database, a PostgreSQL database or a TCP port. Each takes its own from its
xdist worker number (``gw0``, ``gw1``, …; 0 when xdist is not used): Redis database ``N + i`` of the
configured ``…/N``, PostgreSQL database ``NAME_gwI`` beside the configured ``NAME`` (``NAME`` itself
for worker 0), and ports from a block of its own below the kernel's ephemeral range, where neither
another worker nor an outgoing connection can take a port between the test choosing it and a child
process binding it.
"""

from __future__ import annotations

import functools
import itertools
import os
import random
import socket

from sqlalchemy import text
from sqlalchemy.engine import make_url

from models.db import create

#: Redis has 16 databases unless configured otherwise.
REDIS_DATABASES = 16

#: Each worker's ports: ``PORT_BASE + i * PORT_BLOCK`` up to the next block (below 32768, where
#: Linux's ephemeral range starts).
PORT_BASE = 20000
PORT_BLOCK = 1000


def worker_index() -> int:
    """This pytest process' xdist worker number (``PYTEST_XDIST_WORKER=gwI``), 0 without xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name.removeprefix("gw") or 0)


def redis_url_for_worker(url: str) -> str:
    """``url`` with database ``N + i`` in place of its ``N`` (worker ``i``)."""
    base, _, db = url.rpartition("/")
    if "://" not in base or not db.isdigit():
        raise ValueError(f"WA_TEST_REDIS_URL must end in a database number (redis://host:port/N), not {url!r}")
    number = int(db) + worker_index()
    if number >= REDIS_DATABASES:
        raise ValueError(
            f"WA_TEST_REDIS_URL={url!r}: worker {worker_index()} would use Redis database {number}, "
            f"beyond the {REDIS_DATABASES} a Redis has; use a lower N or fewer workers (-n)"
        )
    return f"{base}/{number}"


@functools.cache
def postgres_url_for_worker(url: str) -> str:
    """The worker's own PostgreSQL database beside ``url``'s (created when missing)."""
    index = worker_index()
    if index == 0:
        return url
    base = make_url(url)
    name = f"{base.database}_gw{index}"
    admin = create(url).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


_ports = itertools.count(random.randrange(PORT_BLOCK))


def free_port() -> int:
    """A port on 127.0.0.1 that is free now and that no other test process of this run hands out."""
    start = PORT_BASE + worker_index() * PORT_BLOCK
    if start + PORT_BLOCK > 32768:
        raise RuntimeError(f"worker {worker_index()}: no port block of its own below 32768; use fewer workers (-n)")
    for _ in range(PORT_BLOCK):
        port = start + next(_ports) % PORT_BLOCK
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}..{start + PORT_BLOCK - 1}")
