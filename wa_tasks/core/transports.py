"""The transports a session may use: their names, and the schemas of their ``transport_options``,
which wa-tasks' sessions, API and pages check when a session is configured.

How each transport is built and run is the session host's (``sessions_host.transports``); the
host reads a session's options through these same schemas.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from wa_tasks.settings import Settings

SIMULATED = "simulated"
NEONIZE = "neonize"

#: Transport names a session may use.
AVAILABLE = (SIMULATED, NEONIZE)


# The simulated transport -----------------------------------------------------------------------------


DAY = 86400.0


@dataclass(frozen=True)
class BanRules:
    """The simulated network's anti-spam thresholds (``sessions_host.transports.banmodel``); a simulated
    session's ``ban_rules`` option overrides them."""

    #: A number younger than this (days since it was linked) is "young".
    young_days: float = 14.0
    #: Strangers a young / an established number may message per day before 463 restrictions.
    young_new_contacts_per_day: int = 25
    new_contacts_per_day: int = 250
    #: A 463 restriction lasts this long.
    restriction_seconds: float = DAY
    #: More than ``volume_sends`` within ``volume_seconds``: temporary ban.
    volume_sends: int = 200
    volume_seconds: float = 3600.0
    #: More than ``burst_sends`` within ``burst_seconds``: temporary ban.
    burst_sends: int = 5
    burst_seconds: float = 5.0
    #: The same text to more than this many recipients in a day: temporary ban.
    same_text_recipients: int = 50
    #: This many consecutive gaps within ±2 % of each other look automated: temporary ban.
    regular_gaps: int = 40
    #: How long a temporary ban lasts.
    ban_seconds: float = DAY


@dataclass(frozen=True)
class SimOptions:
    """Behaviour of one simulated session (a session's ``transport_options`` override the defaults)."""

    #: Mean time WhatsApp's server takes to acknowledge a send.
    latency_ms: float = 150.0
    #: Share of sends that fail with a transient error ("timed out waiting for message send response").
    failure_rate: float = 0.0
    #: Mean delay from send to the delivery receipt, and from delivery to the read receipt.
    delivered_after_seconds: float = 1.0
    read_after_seconds: float = 3.0
    #: Pair without a QR scan when the session starts.
    auto_pair: bool = True
    #: Seconds a QR code is shown before it rotates (WhatsApp: 60 s first, then 20 s).
    qr_rotate_seconds: float = 20.0
    seed: int = 0
    #: Restrict the number like WhatsApp's anti-spam would (``banmodel``); off by default so that
    #: tests of other behaviour are not disturbed by it.
    ban_model: bool = False
    #: Overrides of ``banmodel.BanRules`` fields.
    ban_rules: dict[str, Any] = field(default_factory=dict)
    #: How long ago the simulated number was linked (young numbers are restricted sooner).
    linked_days_ago: float = 0.0

    @classmethod
    def build(cls, settings: Settings, overrides: dict[str, Any] | None) -> Self:
        base = cls(
            latency_ms=settings.sim_latency_ms,
            failure_rate=settings.sim_failure_rate,
            delivered_after_seconds=settings.sim_delivered_after_seconds,
            read_after_seconds=settings.sim_read_after_seconds,
            seed=settings.sim_seed,
        )
        overrides = dict(overrides or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(
                f"unknown simulated transport option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values = {f.name: getattr(base, f.name) for f in fields(cls)}
        defaults = {f.name: _default_of(f) for f in fields(cls)}
        for key, value in overrides.items():
            _check_option(key, value, defaults[key])
        values.update(overrides)
        return cls(**values)


def _default_of(f: Field[Any]) -> Any:
    return f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default


def _check_option(key: str, value: Any, default: Any) -> None:
    """A stored option is read by every session host that starts the session: refuse a wrong type
    when it is configured rather than when a host trips over it."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"simulated option {key} must be true or false, not {value!r}")
    elif isinstance(default, int | float):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ValueError(f"simulated option {key} must be a number of 0 or more, not {value!r}")
        if key == "failure_rate" and value > 1:
            raise ValueError(f"simulated option failure_rate is a share from 0 to 1, not {value!r}")
        if isinstance(default, int) and not isinstance(value, int):
            raise ValueError(f"simulated option {key} must be a whole number, not {value!r}")
    elif key == "ban_rules":
        if not isinstance(value, dict):
            raise ValueError(f"simulated option ban_rules must be an object, not {value!r}")
        rules = {f.name: f.default for f in fields(BanRules)}
        unknown = sorted(set(value) - set(rules))
        if unknown:
            raise ValueError(f"unknown ban rule(s): {', '.join(unknown)}; known: {', '.join(sorted(rules))}")
        for rule, setting in value.items():
            _check_option(f"ban_rules.{rule}", setting, rules[rule])


# The neonize transport -------------------------------------------------------------------------------


def check_backoff(base: float, cap: float, attempts: int, jitter: float = 0.25) -> None:
    """Refuse a reconnect schedule that cannot work (a ValueError saying why)."""
    if base < 0 or cap < base:
        raise ValueError(f"reconnect backoff needs 0 <= base <= cap (got base={base}, cap={cap})")
    if attempts < 1:
        raise ValueError(f"reconnect attempts must be at least 1 (got {attempts})")
    if not 0 <= jitter < 0.5:
        raise ValueError(f"reconnect jitter must be in [0, 0.5) (got {jitter})")


@dataclass(frozen=True)
class NeonizeOptions:
    """A neonize session's ``transport_options``."""

    #: Run the client in a child process of its own (see ``sessions_host.transports.neonize``).
    isolate: bool = True
    reconnect_base: float = 2.0
    reconnect_cap: float = 60.0
    reconnect_attempts: int = 10

    @classmethod
    def build(cls, overrides: dict[str, Any] | None) -> Self:
        overrides = dict(overrides or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ValueError(
                f"unknown neonize transport option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values: dict[str, Any] = {}
        for key, value in overrides.items():
            default = getattr(cls, key)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"neonize option {key} must be true or false, not {value!r}")
            elif isinstance(default, int):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"neonize option {key} must be a whole number, not {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"neonize option {key} must be a number, not {value!r}")
            values[key] = value
        options = cls(**values)
        check_backoff(float(options.reconnect_base), float(options.reconnect_cap), options.reconnect_attempts)
        return options


#: How each transport's options are checked: ``(settings, options)`` → the options, or a ValueError.
OPTIONS: dict[str, Callable[[Settings, dict[str, Any] | None], object]] = {
    SIMULATED: lambda settings, options: SimOptions.build(settings, options),
    NEONIZE: lambda settings, options: NeonizeOptions.build(options),
}


def check_options(transport: str, settings: Settings, options: dict[str, Any] | None) -> None:
    """Refuse ``options`` that ``transport`` does not take (a ValueError or TypeError saying why)."""
    OPTIONS[transport](settings, options)
