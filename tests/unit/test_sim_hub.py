"""The simulated network's hub thread (sessions_host/transports/simulated.py) on a fake Redis."""

from __future__ import annotations

import threading
import time

import fakeredis

from sessions_host.transports.simnet import SimNet
from sessions_host.transports.simulated import SimHub


def test_a_hub_without_sessions_sleeps_between_ticks() -> None:
    # A session host with no simulated session (only neonize ones, or none yet) keeps a hub: it
    # must wait for its next tick, not spin on a tick that is always due.
    hub = SimHub(SimNet(fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)))
    try:
        cpu, idle = time.thread_time(), threading.Event()
        started = time.process_time()
        idle.wait(0.5)
        used = time.process_time() - started - (time.thread_time() - cpu)
    finally:
        hub.close()
    assert used < 0.05, f"the idle hub used {used:.2f} s of CPU in 0.5 s"
