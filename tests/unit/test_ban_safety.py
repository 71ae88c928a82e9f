"""Ban safety against the simulator's ban model, on a virtual clock: a billing month of reminders to
1,000 customers over two young numbers. With the default protections no number is restricted; with
them switched off the model bites. The same month on three numbers with and without routing
affinity (the number that knows the customer) compares how many customers each number meets as strangers. Also the pure
rules of ``safety.decide`` and of the ban model."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

import pytest

from sessions_host.safety import DAY, Counters, MemorySafetyStore, SafetyRules, SessionSafety, decide, step
from sessions_host.transports.banmodel import BanModel, BanRules, Device, Verdict
from wa_tasks.core.routing import Candidate, prefer_known

START = 1_767_225_600.0  # 2026-01-01 00:00 UTC: the month starts; both numbers were linked then


# The pure rules ---------------------------------------------------------------------------------


def test_warmup_and_new_contact_budget_grow_with_the_numbers_age():
    rules = SafetyRules()
    assert [step(rules.warmup, d) for d in (0, 2.9, 3, 10, 45)] == [20, 20, 40, 80, 500]
    assert step(rules.new_contacts, 0) < step(rules.new_contacts, 30)


@pytest.mark.parametrize(
    ("counters", "allowed", "words"),
    [
        (Counters(sent_today=19, new_today=0, sent_this_hour=0, is_new=False), True, ""),
        (Counters(sent_today=20, new_today=0, sent_this_hour=0, is_new=False), False, "daily cap of 20"),
        (Counters(sent_today=5, new_today=12, sent_this_hour=0, is_new=True), False, "new-contact budget of 12"),
        (Counters(sent_today=5, new_today=12, sent_this_hour=0, is_new=False), True, ""),
        (Counters(sent_today=5, new_today=0, sent_this_hour=100, is_new=False), False, "hourly cap of 100"),
        (
            Counters(sent_today=0, new_today=0, sent_this_hour=0, is_new=False, paused_until=START + 60),
            False,
            "restriction",
        ),
    ],
)
def test_decide(counters: Counters, allowed: bool, words: str) -> None:
    decision = decide(SafetyRules(), age_days=0, c=counters, now=START)
    assert decision.allowed is allowed
    assert words in decision.reason
    if not allowed:
        assert decision.until > START


def test_switched_off_safety_allows_everything():
    flood = Counters(sent_today=10_000, new_today=10_000, sent_this_hour=10_000, is_new=True, paused_until=START * 2)
    assert decide(SafetyRules(enabled=False), 0, flood, START).allowed


def test_a_restriction_pauses_the_session_then_slows_it_down():
    clock = [START]
    safety = SessionSafety("wa-1", MemorySafetyStore(), SafetyRules(), START, clock=lambda: clock[0])
    until = safety.restricted("server returned error 463")
    assert until == START + 6 * 3600
    assert not safety.check("6281")[0].allowed
    clock[0] = until + 1
    assert safety.check("6281")[0].allowed
    assert safety.pace_factor() == 2.0
    clock[0] = until + DAY + 1
    assert safety.pace_factor() == 1.0


def test_the_ban_model_restricts_a_young_number_that_messages_many_strangers():
    model, device = BanModel(BanRules(young_new_contacts_per_day=3)), Device(linked_at=START)
    verdicts = [model.verdict(device, START + i * 60, f"62812{i}", f"hi {i}")[0] for i in range(5)]
    assert verdicts == [Verdict.OK] * 3 + [Verdict.RESTRICTED] * 2
    # known contacts still get through while the number is restricted for new ones
    assert model.verdict(device, START + 600, "628120", "again")[0] == Verdict.OK


def test_the_ban_model_bans_bursts_and_machine_regular_sending():
    model = BanModel()
    burst = Device(linked_at=START - 100 * DAY)
    for i in range(6):
        model.verdict(burst, START + i * 0.5, f"6281{i}", f"x{i}")
    assert model.verdict(burst, START + 4, "62899", "y")[0] == Verdict.BANNED

    regular = Device(linked_at=START - 100 * DAY)
    for i in range(45):
        model.verdict(regular, START + i * 2.0, f"6282{i}", f"tagihan {i}")
    assert regular.banned_until > 0 and regular.reason == "machine-regular sending"


# A billing month on a virtual clock ------------------------------------------------------------


@dataclass(order=True)
class _Msg:
    due: float
    seq: int
    to: str = field(compare=False)
    text: str = field(compare=False)


def _billing_month(
    protections: bool, seed: int = 7, *, numbers: int = 2, affinity: bool = False, customers: int = 1000
) -> dict[str, object]:
    """Young numbers (priorities 1, 2, ...), 1,000 customers by default: an invoice to everyone on day 1,
    reminders on day 20 to the 40 % who have not paid, a payment confirmation when each pays.
    Each number sends one message per pace slot through the same ``decide`` the host uses, with
    failover to the next number when one refuses; the ban model judges every send. With
    ``affinity`` the number that last sent to the customer goes first while it can send
    (``wa_tasks.core.routing.prefer_known``): the number that knows the customer."""
    rng = random.Random(seed)
    rules = SafetyRules(enabled=protections)
    store = MemorySafetyStore(rules)
    model = BanModel()
    names = [f"wa-{i + 1}" for i in range(numbers)]
    devices = {n: Device(linked_at=START) for n in names}
    queue: list[_Msg] = []
    seq = 0

    def add(at: float, to: str, text: str) -> None:
        nonlocal seq
        heapq.heappush(queue, _Msg(at, seq, to, text))
        seq += 1

    numbers_of = [f"62812{i:07d}" for i in range(customers)]
    payers = set(rng.sample(numbers_of, customers * 6 // 10))
    for i, c in enumerate(numbers_of):
        add(START + 9 * 3600, c, f"Tagihan baru INV-{i:04d} Rp{rng.randint(100, 300)}.000")
        if c in payers:
            add(START + rng.uniform(1, 19) * DAY, c, f"Pembayaran INV-{i:04d} diterima")
        else:
            add(START + 19 * DAY + 9 * 3600, c, f"Pengingat INV-{i:04d} jatuh tempo")
    clock = [START]
    safeties = {n: SessionSafety(n, store, rules, START, clock=lambda: clock[0]) for n in names}
    next_free = dict.fromkeys(names, START)
    last_sender: dict[str, str] = {}
    restricted: set[str] = set()
    restrictions = 0
    delivered = 0
    end = START + 30 * DAY
    while queue and queue[0].due < end:
        msg = heapq.heappop(queue)
        clock[0] = msg.due
        sent = False
        waits = []
        checks = {n: safeties[n].check(msg.to) for n in names}
        order = names  # failover: priority 1 first, then 2, ...
        if affinity:
            candidates = [
                Candidate(n, priority=p, connected=True, within_caps=checks[n][0].allowed) for p, n in enumerate(names)
            ]
            known = prefer_known(candidates, last_sender.get(msg.to))
            if known is not None:
                order = [known, *(n for n in names if n != known)]
        for n in order:
            decision, is_new = checks[n]
            if not decision.allowed:
                waits.append(decision.until)
                continue
            at = max(msg.due, next_free[n])
            verdict, until = model.verdict(devices[n], at, msg.to, msg.text)
            if verdict != Verdict.OK:
                restricted.add(n)
                restrictions += 1
                safeties[n].restricted(verdict.value, until if verdict == Verdict.BANNED else None)
                waits.append(until)
                continue
            safeties[n].sent(msg.to, is_new)
            pace = 1.0 * safeties[n].pace_factor()
            next_free[n] = at + pace + (rng.uniform(0, 0.3) if protections else 0.0)
            last_sender[msg.to] = n
            delivered += 1
            sent = True
            break
        if not sent:
            add(max(min(waits), msg.due + 1), msg.to, msg.text)
    return {
        "delivered": delivered,
        "left": len(queue),
        "restricted": restricted,
        #: Sends the ban model refused (restricted or banned).
        "restrictions": restrictions,
        "reasons": {n: d.reason for n, d in devices.items() if d.reason},
        #: Customers each number messaged as a stranger (a cold contact) over the month.
        "new_contacts": {n: len(d.contacts) for n, d in devices.items()},
    }


def test_with_the_default_protections_no_number_is_restricted_and_every_message_goes_out():
    result = _billing_month(protections=True)
    assert result["restricted"] == set(), result["reasons"]
    assert result["delivered"] == 2000 and result["left"] == 0


def test_without_protections_the_same_month_gets_the_numbers_restricted():
    result = _billing_month(protections=False)
    assert result["restricted"], "the ban model must bite when the protections are off"


def test_affinity_keeps_each_customer_on_the_number_that_knows_them():
    """Three numbers: without affinity, failover hands a customer to whichever number
    has room that day, and each move makes them a cold contact of another number again; with it,
    each customer is a stranger to one number only (``-s`` prints the figures)."""
    runs = {
        (protections, affinity): _billing_month(protections, numbers=3, affinity=affinity, customers=500)
        for protections in (True, False)
        for affinity in (False, True)
    }
    for (protections, affinity), r in runs.items():
        print(
            f"protections={'on ' if protections else 'off'} affinity={'on ' if affinity else 'off'}: "
            f"new contacts {r['new_contacts']} = {sum(r['new_contacts'].values())}, "
            f"sends refused {r['restrictions']} (numbers restricted or banned: {sorted(r['restricted'])})"
        )
    without, with_ = runs[True, False], runs[True, True]
    for r in (without, with_):
        assert r["delivered"] == 1000 and r["left"] == 0
        assert r["restricted"] == set() and r["restrictions"] == 0, r["reasons"]
    cold_without = sum(without["new_contacts"].values())
    cold_with = sum(with_["new_contacts"].values())
    assert cold_with == 500  # each customer met one number only
    assert cold_without > 600  # a fifth or more of the customers met a second number
    assert max(with_["new_contacts"].values()) < max(without["new_contacts"].values())
    # Without the protections the model bites either way, but cold contacts still fall with affinity.
    assert runs[False, True]["restrictions"] <= runs[False, False]["restrictions"]
    assert sum(runs[False, True]["new_contacts"].values()) < sum(runs[False, False]["new_contacts"].values())


def test_a_number_that_heard_from_a_customer_knows_them():
    model, device = BanModel(BanRules(young_new_contacts_per_day=1)), Device(linked_at=START)
    assert model.verdict(device, START, "62811", "hi")[0] == Verdict.OK
    device.heard_from("62812")  # the customer wrote first: not a cold contact
    assert model.verdict(device, START + 60, "62812", "balasan")[0] == Verdict.OK
    assert model.verdict(device, START + 120, "62813", "hi")[0] == Verdict.RESTRICTED
