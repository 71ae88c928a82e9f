"""The simulated WhatsApp network's shared state in Redis: which devices are paired, which
connections are dropped, which QR codes were scanned, the recipient-side ledger of every
message the network accepted, and customers' replies on their way to a session (``reply``).

Session hosts write it through the simulated transport; ``wa-tasks sim ...`` commands and tests
read and steer it from other processes.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import redis

from wa_tasks.core import redis_keys, timefmt


@dataclass(frozen=True)
class LedgerEntry:
    """One message as the recipient's phone got it."""

    session: str  #: the wa-tasks session that sent it
    sender: str  #: the sending device's number
    to: str  #: recipient, E.164 digits
    text: str
    wa_message_id: str
    at: str  #: ISO time the network accepted it
    kind: str = "text"  #: "text", "image" or "document"
    mimetype: str | None = None  #: of an image or document
    size: int | None = None  #: bytes of an image or document

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass(frozen=True)
class Reply:
    """A message a customer sends to a simulated session's number."""

    sender: str  #: the customer, E.164 digits
    text: str
    wa_message_id: str
    at: str  #: ISO time the customer sent it


#: KEYS: [1] SIM_DUE, then each session's receipts and replies. ARGV: [1] now, then the session ids.
#: Returns, per session, its receipts due by now (member, score, …) and its replies; leaves in
#: SIM_DUE the time of its next receipt, or nothing.
TAKE_DUE = """
local now = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV do
  local receipts, replies = KEYS[2 * i - 2], KEYS[2 * i - 1]
  local due = redis.call('ZRANGEBYSCORE', receipts, '-inf', now, 'WITHSCORES')
  redis.call('ZREMRANGEBYSCORE', receipts, '-inf', now)
  local waiting = redis.call('LRANGE', replies, 0, -1)
  redis.call('DEL', replies)
  local next_due = redis.call('ZRANGE', receipts, 0, 0, 'WITHSCORES')
  if next_due[2] then
    redis.call('ZADD', KEYS[1], next_due[2], ARGV[i])
  else
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
  out[#out + 1] = {due, waiting}
end
return out
"""


#: KEYS: [1] SIM_DROPPED, [2] SIM_NOT_ON_WHATSAPP, [3] SIM_LEDGER, [4] the session's receipts,
#: [5] SIM_DUE. ARGV: [1] the session, [2] the recipient, [3] "1" to record the message, [4] its
#: ledger entry, then (receipt member, due time) pairs. The server's answer to one send in one round
#: trip: "dropped" (the session's connection is cut), "absent" (the recipient is not on WhatsApp),
#: else "ok", with the message recorded if asked and its receipts held for the session.
ACCEPT = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 'dropped' end
if redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 1 then return 'absent' end
if ARGV[3] == '1' then
  redis.call('RPUSH', KEYS[3], ARGV[4])
  local first = nil
  for i = 5, #ARGV, 2 do
    redis.call('ZADD', KEYS[4], ARGV[i + 1], ARGV[i])
    if first == nil or tonumber(ARGV[i + 1]) < first then first = tonumber(ARGV[i + 1]) end
  end
  if first ~= nil then redis.call('ZADD', KEYS[5], 'LT', first, ARGV[1]) end
end
return 'ok'
"""


class SimNet:
    """Access to the simulated network's state (thin wrapper over Redis)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    # Ledger ------------------------------------------------------------------------------------

    def accept(self, entry: LedgerEntry, receipts: Sequence[tuple[str, float]] = (), *, record: bool = True) -> str:
        """The server's answer to a send, in one round trip: ``"dropped"`` if the sending session's
        connection is cut, ``"absent"`` if the recipient is not on WhatsApp, else ``"ok"``; then,
        if ``record``, the message is on the recipient's phone and its receipts (``(kind, due unix
        time)``) are held for the sending session, as WhatsApp's server holds them for a device
        that is offline when they come."""
        args: list[str | float] = [entry.session, entry.to, "1" if record else "0", entry.to_json()]
        for kind, due in receipts:
            args += [json.dumps({"id": entry.wa_message_id, "kind": kind}), due]
        keys = [
            redis_keys.SIM_DROPPED,
            redis_keys.SIM_NOT_ON_WHATSAPP,
            redis_keys.SIM_LEDGER,
            redis_keys.sim_receipts(entry.session),
            redis_keys.SIM_DUE,
        ]
        answer = self._accept(keys=keys, args=args)
        return answer.decode() if isinstance(answer, bytes) else str(answer)

    @functools.cached_property
    def _accept(self) -> Any:
        return self.redis.register_script(ACCEPT)

    def due_sessions(self, now: float) -> list[str]:
        """The sessions that something waits for by ``now`` (a reply, a receipt due)."""
        return [str(s) for s in self.redis.zrangebyscore(redis_keys.SIM_DUE, "-inf", now)]

    def take_due(
        self, session_ids: list[str], now: float
    ) -> tuple[dict[str, list[Reply]], dict[str, list[tuple[str, str, float]]]]:
        """Remove and return, for each of ``session_ids``, the replies waiting for it and the
        receipts due by ``now`` as ``(WhatsApp message id, kind, due unix time)``; one script call,
        which also moves each session's entry in :data:`SIM_DUE` to its next receipt."""
        if not session_ids:
            return {}, {}
        keys = [redis_keys.SIM_DUE]
        for session_id in session_ids:
            keys += [redis_keys.sim_receipts(session_id), redis_keys.sim_replies(session_id)]
        results = self._take_due(keys=keys, args=[now, *session_ids])
        replies: dict[str, list[Reply]] = {}
        receipts: dict[str, list[tuple[str, str, float]]] = {}
        for session_id, (due, waiting) in zip(session_ids, results, strict=True):
            for raw, at in zip(due[::2], due[1::2], strict=True):
                receipt = json.loads(raw)
                receipts.setdefault(session_id, []).append((receipt["id"], receipt["kind"], float(at)))
            if waiting:
                replies[session_id] = [Reply(**json.loads(raw)) for raw in waiting]
        return replies, receipts

    @functools.cached_property
    def _take_due(self) -> Any:
        return self.redis.register_script(TAKE_DUE)

    def ledger(self, number: str | None = None) -> list[LedgerEntry]:
        entries = [LedgerEntry(**json.loads(raw)) for raw in self.redis.lrange(redis_keys.SIM_LEDGER, 0, -1)]
        return [e for e in entries if number is None or e.to == number]

    # Devices and pairing -------------------------------------------------------------------------

    def device_number(self, session_id: str) -> str | None:
        value = self.redis.hget(redis_keys.SIM_DEVICES, session_id)
        return str(value) if value else None

    def devices(self, session_ids: list[str] | None = None) -> dict[str, str]:
        """Every paired session (of ``session_ids``, if given) and its device's number."""
        if session_ids is None:
            return {str(k): str(v) for k, v in self.redis.hgetall(redis_keys.SIM_DEVICES).items()}
        if not session_ids:
            return {}
        numbers = self.redis.hmget(redis_keys.SIM_DEVICES, session_ids)
        return {s: str(n) for s, n in zip(session_ids, numbers, strict=True) if n}

    def pair(self, session_id: str, number: str | None = None) -> str:
        """Link a simulated device to ``session_id`` (what a QR scan does); returns its number."""
        number = number or simulated_number(session_id)
        pipe = self.redis.pipeline()
        pipe.hset(redis_keys.SIM_DEVICES, session_id, number)
        pipe.incr(redis_keys.SIM_VERSION)
        pipe.execute()
        return number

    def unpair(self, session_id: str) -> None:
        pipe = self.redis.pipeline()
        pipe.hdel(redis_keys.SIM_DEVICES, session_id)
        pipe.incr(redis_keys.SIM_VERSION)
        pipe.hdel(redis_keys.SIM_QR, session_id)
        pipe.srem(redis_keys.SIM_SCANNED, session_id)
        pipe.execute()

    def show_qr(self, session_id: str, code: str | None) -> None:
        if code is None:
            self.redis.hdel(redis_keys.SIM_QR, session_id)
        else:
            self.redis.hset(redis_keys.SIM_QR, session_id, code)

    def current_qr(self, session_id: str) -> str | None:
        value = self.redis.hget(redis_keys.SIM_QR, session_id)
        return str(value) if value else None

    def scan(self, session_id: str) -> None:
        """Play the phone scanning the QR code that ``session_id`` shows."""
        self.redis.sadd(redis_keys.SIM_SCANNED, session_id)

    def take_scan(self, session_id: str) -> bool:
        return bool(self.redis.srem(redis_keys.SIM_SCANNED, session_id))

    # Recipients ----------------------------------------------------------------------------------

    def set_not_on_whatsapp(self, number: str, absent: bool = True) -> None:
        """Make ``number`` (E.164 digits) unknown to WhatsApp: sends to it fail permanently."""
        if absent:
            self.redis.sadd(redis_keys.SIM_NOT_ON_WHATSAPP, number)
        else:
            self.redis.srem(redis_keys.SIM_NOT_ON_WHATSAPP, number)

    def is_on_whatsapp(self, number: str) -> bool:
        return not self.redis.sismember(redis_keys.SIM_NOT_ON_WHATSAPP, number)

    # Customers' replies --------------------------------------------------------------------------

    def reply(self, session_id: str, from_number: str, text: str) -> str:
        """Play customer ``from_number`` (E.164 digits) sending ``text`` to ``session_id``'s number;
        the session receives it on its next tick while connected. Returns the reply's message id."""
        wa_id = "SIMIN" + uuid.uuid4().hex[:15].upper()
        self.send_reply(session_id, Reply(sender=from_number, text=text, wa_message_id=wa_id, at=now_iso()))
        return wa_id

    def send_reply(self, session_id: str, reply: Reply) -> None:
        """Put ``reply`` on the network for ``session_id`` as it is (a customer's phone sending the
        same message again carries the same id)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.rpush(redis_keys.sim_replies(session_id), json.dumps(asdict(reply), ensure_ascii=False))
        pipe.zadd(redis_keys.SIM_DUE, {session_id: 0}, lt=True)
        pipe.execute()

    # Read receipts the sessions sent to customers ------------------------------------------------

    def record_read(self, session_id: str, wa_message_id: str, sender: str) -> None:
        self.redis.rpush(
            redis_keys.SIM_READ_RECEIPTS, json.dumps({"session": session_id, "id": wa_message_id, "to": sender})
        )

    def read_receipts(self) -> list[dict[str, str]]:
        return [json.loads(raw) for raw in self.redis.lrange(redis_keys.SIM_READ_RECEIPTS, 0, -1)]

    # Connection faults ---------------------------------------------------------------------------

    def drop(self, session_id: str) -> None:
        """Cut ``session_id``'s connection until :meth:`restore`."""
        pipe = self.redis.pipeline()
        pipe.sadd(redis_keys.SIM_DROPPED, session_id)
        pipe.incr(redis_keys.SIM_VERSION)
        pipe.execute()

    def restore(self, session_id: str) -> None:
        pipe = self.redis.pipeline()
        pipe.srem(redis_keys.SIM_DROPPED, session_id)
        pipe.incr(redis_keys.SIM_VERSION)
        pipe.execute()

    def version(self) -> str:
        """Changes when a device is paired or unpaired or a connection dropped or restored."""
        return str(self.redis.get(redis_keys.SIM_VERSION) or "0")

    def dropped(self) -> set[str]:
        return {str(s) for s in self.redis.smembers(redis_keys.SIM_DROPPED)}


def simulated_number(session_id: str) -> str:
    """A stable, valid-looking Indonesian mobile number for a simulated device."""
    return f"62811{zlib.crc32(session_id.encode()) % 10**8:08d}"


def now_iso() -> str:
    return timefmt.iso(dt.datetime.now(dt.UTC))
