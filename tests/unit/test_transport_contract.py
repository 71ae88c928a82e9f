"""The transport contract: what the session host relies on from every transport (``base.Transport``),
checked the same way on the simulated transport and on the neonize one, each built through the
registry as the host builds it (``sessions_host.transports.build``).

WhatsApp's servers cannot be reached from here, so the neonize transport is only taken as far as it
goes offline: built, its options checked, its state and sends before it is started, its stop, and
its error vocabulary (``sessions_host.transports.errors``), with which the errors of the simulated
network are compared. These cases run in the fast tier, except ``start`` on neonize, which starts
its child process (a Python interpreter and a Go runtime): that parameter is in the integration
tier. A case that applies to one transport only says why in its docstring.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pytest

from models.statuses import SessionStatus
from sessions_host import transports
from sessions_host.transports.base import (
    Event,
    RecipientError,
    RestrictedError,
    SendError,
    SessionError,
    StateChanged,
    Transport,
)
from sessions_host.transports.errors import classify
from sessions_host.transports.simnet import SimNet
from sessions_host.transports.simulated import SimHub, SimulatedTransport
from wa_tasks.settings import Settings

SIMULATED, NEONIZE = "simulated", "neonize"
#: Every transport, each in the tier its cases can run in without a process of its own.
BOTH = [SIMULATED, NEONIZE]
#: For the cases that start the transport: neonize's start spawns its child process.
STARTED = [SIMULATED, pytest.param(NEONIZE, marks=pytest.mark.integration)]
#: The interface the host calls, as ``base.Transport`` declares it.
METHODS = ("start", "stop", "new_tag", "send_text", "send_media")
JID = "6281234567890@s.whatsapp.net"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Settings, SimHub]]:
    """What the registry builds a transport from: the settings and the simulated network's hub."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'wa-tasks.db'}",
        data_dir=tmp_path / "var",
        sim_latency_ms=0,
        sim_delivered_after_seconds=3600,
    )
    hub = SimHub(SimNet(fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)))
    hub.TICK_SECONDS = 0.01  # type: ignore[misc]
    try:
        yield settings, hub
    finally:
        hub.close()


def build(world: tuple[Settings, SimHub], name: str, options: dict[str, object] | None = None) -> Transport:
    settings, hub = world
    return transports.build(name, "wa-1", options, settings, hub)


class Events:
    """An event sink that keeps what a transport reports."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def states(self) -> list[tuple[str, str | None]]:
        return [(e.status, e.detail) for e in self.events if isinstance(e, StateChanged)]

    def wait_for(self, status: str, timeout: float = 5.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: any(s == status for s, _ in self.states()), timeout):
                raise AssertionError(f"no {status} state within {timeout} s: {self.states()}")


# Built, configured, and before start ------------------------------------------------------------------


@pytest.mark.parametrize("name", BOTH)
def test_the_registry_builds_it_with_the_interface_of_base(world: tuple[Settings, SimHub], name: str) -> None:
    transport = build(world, name)

    assert transport.session_id == "wa-1"
    for method in METHODS:
        declared = inspect.signature(getattr(Transport, method))
        offered = inspect.signature(getattr(type(transport), method))
        assert list(offered.parameters) == list(declared.parameters), f"{name}.{method}{offered} ≠ {declared}"
        for parameter in declared.parameters.values():  # the same defaults where the interface has one
            assert offered.parameters[parameter.name].default == parameter.default, f"{name}.{method}"
    assert isinstance(inspect.getattr_static(type(transport), "connected"), property)


@pytest.mark.parametrize(
    ("name", "good", "unknown", "wrong"),
    [
        (SIMULATED, {"latency_ms": 10, "auto_pair": False}, {"latnecy_ms": 10}, ("latency_ms", "fast")),
        (NEONIZE, {"isolate": False, "reconnect_attempts": 3}, {"isolated": False}, ("isolate", "yes")),
    ],
)
def test_options_are_checked_before_a_session_is_configured(
    world: tuple[Settings, SimHub],
    name: str,
    good: dict[str, object],
    unknown: dict[str, object],
    wrong: tuple[str, object],
) -> None:
    settings, _ = world
    transports.check_options(name, settings, good)
    build(world, name, good)
    [misspelt] = unknown
    with pytest.raises(ValueError, match=misspelt):
        transports.check_options(name, settings, unknown)
    option, value = wrong
    with pytest.raises(ValueError, match=f"{option}.*{value}"):
        transports.check_options(name, settings, {option: value})
    # The host builds with the same check: a row changed by hand is refused, not half-started.
    with pytest.raises(ValueError, match=misspelt):
        build(world, name, unknown)


def test_the_registry_refuses_a_transport_it_does_not_have(world: tuple[Settings, SimHub]) -> None:
    with pytest.raises(ValueError, match="'carrier-pigeon'.*simulated"):
        build(world, "carrier-pigeon")


@pytest.mark.parametrize("name", BOTH)
def test_a_transport_not_started_is_disconnected(world: tuple[Settings, SimHub], name: str) -> None:
    assert build(world, name).connected is False


@pytest.mark.parametrize("name", BOTH)
def test_a_send_before_start_is_a_session_error_and_sends_nothing(world: tuple[Settings, SimHub], name: str) -> None:
    """A ``SessionError`` (and no subclass that would take the number out of rotation): the host
    moves the message to another session without charging it an attempt."""
    transport = build(world, name)

    for send in (
        lambda: transport.send_text(JID, "Halo", tag=transport.new_tag()),
        lambda: transport.send_media(
            JID, b"%PDF-1.4", "application/pdf", "Invoice", "inv.pdf", tag=transport.new_tag()
        ),
    ):
        with pytest.raises(SessionError) as raised:
            send()
        assert type(raised.value) is SessionError, raised.value
    _, hub = world
    assert hub.simnet.ledger() == []


@pytest.mark.parametrize("name", BOTH)
def test_each_send_gets_a_tag_of_its_own_before_it_goes_out(world: tuple[Settings, SimHub], name: str) -> None:
    """The tag is what lets a receipt resolve a send its host died during (``lifecycle``): each must
    identify one send (the simulated network carries an id, neonize a ``messageSecret``)."""
    transport = build(world, name)

    tags = [transport.new_tag() for _ in range(50)]

    assert all(tag.wa_message_id or tag.secret for tag in tags)
    assert len({(tag.wa_message_id, tag.secret) for tag in tags}) == 50


@pytest.mark.parametrize("name", BOTH)
def test_stop_before_start_and_twice_is_harmless(world: tuple[Settings, SimHub], name: str) -> None:
    transport = build(world, name)

    transport.stop()
    transport.stop()

    assert transport.connected is False


# Started -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STARTED)
def test_stop_reports_disconnected_once_and_a_second_stop_nothing(world: tuple[Settings, SimHub], name: str) -> None:
    transport = build(world, name)
    events = Events()
    transport.start(events)
    events.wait_for(SessionStatus.CONNECTED if name == SIMULATED else SessionStatus.CONNECTING)

    transport.stop()
    transport.stop()

    assert transport.connected is False
    assert events.states()[-1] == (SessionStatus.DISCONNECTED, "stopped")
    assert events.states().count((SessionStatus.DISCONNECTED, "stopped")) == 1


# Errors: what the simulated network raises, read as whatsmeow's texts ------------------------------------


def simulated_error(world: tuple[Settings, SimHub], situation: str) -> SendError:
    """The error the simulated transport raises in ``situation``."""
    options: dict[str, object] = {}
    if situation == "restricted":
        options = {"ban_model": True, "ban_rules": {"young_new_contacts_per_day": 0}}
    if situation == "transient":
        options = {"failure_rate": 1.0}
    transport = build(world, SIMULATED, options)
    assert isinstance(transport, SimulatedTransport)
    events = Events()
    transport.start(events)
    try:
        events.wait_for(SessionStatus.CONNECTED)
        if situation == "not on WhatsApp":
            transport.simnet.set_not_on_whatsapp(JID.split("@")[0])
        if situation == "dropped during the send":
            transport.simnet.drop("wa-1")
        if situation == "disconnected":
            transport.simnet.drop("wa-1")
            events.wait_for(SessionStatus.DISCONNECTED)
        with pytest.raises(SendError) as raised:
            transport.send_text(JID, "Halo", tag=transport.new_tag())
        return raised.value
    finally:
        transport.stop()


#: What the simulated network and whatsmeow's texts disagree on (see the report in each reason).
DIVERGES = {
    "disconnected": "the simulated network raises SessionError (moved, no attempt charged); whatsmeow's "
    "'websocket not connected' classifies as TransientSendError (retried after a backoff, an attempt charged)",
    "dropped during the send": "the simulated network raises SessionError before the network has the message; "
    "whatsmeow's 'websocket disconnected before message send returned response' classifies as AmbiguousSendError "
    "(it may have gone: never resent)",
    "transient": "the simulated network's injected failure (before the network has the message) borrows "
    "whatsmeow's 'timed out waiting for message send response', which classifies as AmbiguousSendError",
}


@pytest.mark.parametrize(
    ("situation", "expected"),
    [
        ("not on WhatsApp", RecipientError),
        ("restricted", RestrictedError),
        *[
            pytest.param(situation, None, marks=pytest.mark.xfail(strict=True, reason=reason))
            for situation, reason in DIVERGES.items()
        ],
    ],
)
def test_the_simulated_errors_mean_what_whatsmeows_texts_mean(
    world: tuple[Settings, SimHub], situation: str, expected: type[SendError] | None
) -> None:
    """Simulated only: neonize's errors are whatsmeow's texts, classified by ``errors.classify``;
    the simulated transport raises its classes itself, with whatsmeow's texts. The host acts on the
    class, so a text that classifies otherwise is a place where the two transports would lead the
    host to different outcomes for the same situation. The cases marked xfail are such places."""
    error = simulated_error(world, situation)

    if expected is not None:
        assert type(error) is expected
    assert classify(str(error)) is type(error), f"{situation}: {type(error).__name__}({error})"
