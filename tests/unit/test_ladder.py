"""Reminder ladders: steps, notice keys and the plan of an invoice's notices, on a fixed clock."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from wa_tasks.core import ladder
from wa_tasks.core.default_templates import DEFAULTS
from wa_tasks.core.ladder import Step, ladder_plan, notice_key, parse_ladder, parse_step
from wa_tasks.errors import InvalidRequest, InvalidSchedule

WIB = ZoneInfo("Asia/Jakarta")
WIT = ZoneInfo("Asia/Jayapura")
#: Billing's daily cron, a week before the due date.
NOW = dt.datetime(2026, 12, 3, 1, 0, tzinfo=WIB)
DUE = dt.date(2026, 12, 10)


@pytest.mark.parametrize(
    ("text", "days", "label", "kind"),
    [
        ("H-7", -7, "H-7", "reminder"),
        ("h-3", -3, "H-3", "reminder"),
        (" H - 1 ", -1, "H-1", "reminder"),
        ("H0", 0, "H0", "due"),
        ("H", 0, "H0", "due"),
        ("H-0", 0, "H0", "due"),
        ("H+1", 1, "H+1", "overdue"),
        ("H+30", 30, "H+30", "overdue"),
    ],
)
def test_parse_step(text: str, days: int, label: str, kind: str) -> None:
    step = parse_step(text)
    assert step == Step(days)
    assert step.label == str(step) == label
    assert step.kind == kind


@pytest.mark.parametrize("text", ["H3", "D-3", "H-", "H--3", "H-3d", "-3", "", "H+1.5", None, 3, "H-400"])
def test_bad_steps_are_refused_naming_the_step(text: object) -> None:
    with pytest.raises(InvalidSchedule) as caught:
        parse_step(text)
    assert f"ladder step {text!r}" in str(caught.value)
    assert isinstance(caught.value, InvalidRequest)


def test_parse_ladder_sorts_and_refuses_repeats() -> None:
    assert [s.label for s in parse_ladder(["H+1", "H-3", "H0", "H-7"])] == ["H-7", "H-3", "H0", "H+1"]
    assert [s.label for s in parse_ladder("H-3, H-1,H0")] == ["H-3", "H-1", "H0"]
    with pytest.raises(InvalidSchedule, match=r"ladder step 'H-0' repeats 'H0' \(both are H0\)"):
        parse_ladder(["H0", "H-0"])
    with pytest.raises(InvalidSchedule, match="no steps"):
        parse_ladder([])
    with pytest.raises(InvalidSchedule, match=r"ladder step 'H\+x'"):
        parse_ladder(["H-1", "H+x"])
    with pytest.raises(InvalidSchedule, match="ladder must be a list"):
        parse_ladder({"H-1": 1})


def test_notice_keys() -> None:
    assert notice_key("INV-7", "reminder", "H-3") == "invoice:INV-7:reminder:H-3"
    assert notice_key("INV-7", "reminder", "h+1") == "invoice:INV-7:reminder:H+1"
    assert notice_key("INV-7", "isolir") == "invoice:INV-7:isolir"
    longest = "X" * (200 - len("invoice::reminder:H-3"))
    assert len(notice_key(longest, "reminder", "H-3")) == 200
    with pytest.raises(InvalidSchedule, match="201 characters, more than 200"):
        notice_key(longest + "X", "reminder", "H-3")
    for bad in ("", " INV-7", None, 7):
        with pytest.raises(InvalidSchedule, match=f"invoice_number must be .* got {bad!r}"):
            notice_key(bad, "reminder", "H-3")
    with pytest.raises(InvalidSchedule, match="printable"):
        ladder.check_notice_key("invoice:INV\n7")


def test_the_default_ladder_of_an_invoice() -> None:
    plan = ladder_plan("INV-7", DUE, now=NOW)
    assert [(p.step.label, p.send_at, p.notice_key, p.template) for p in plan] == [
        ("H-3", dt.datetime(2026, 12, 7, 9, 0, tzinfo=WIB), "invoice:INV-7:reminder:H-3", "payment_reminder"),
        ("H-1", dt.datetime(2026, 12, 9, 9, 0, tzinfo=WIB), "invoice:INV-7:reminder:H-1", "payment_reminder"),
        ("H0", dt.datetime(2026, 12, 10, 9, 0, tzinfo=WIB), "invoice:INV-7:reminder:H0", "due_today_reminder"),
        ("H+1", dt.datetime(2026, 12, 11, 9, 0, tzinfo=WIB), "invoice:INV-7:reminder:H+1", "overdue_reminder"),
    ]
    assert all(p.send_at.tzinfo == WIB for p in plan)


def test_every_step_template_is_shipped() -> None:
    assert set(ladder.STEP_TEMPLATES.values()) <= set(DEFAULTS)
    for name in ladder.STEP_TEMPLATES.values():
        assert DEFAULTS[name].category == "reminder"


def test_steps_in_the_past_are_skipped_not_sent_at_once() -> None:
    on_h1_at_ten = dt.datetime(2026, 12, 9, 10, 0, tzinfo=WIB)
    plan = ladder_plan("INV-7", DUE, ["H-7", "H-3", "H-1", "H0", "H+1"], now=on_h1_at_ten)
    assert [p.step.label for p in plan] == ["H0", "H+1"]
    # Exactly at the step's time it is still planned; a grace keeps a step that just passed.
    assert [p.step.label for p in ladder_plan("INV-7", DUE, ["H-1"], now=on_h1_at_ten - dt.timedelta(hours=1))] == [
        "H-1"
    ]
    assert [
        p.step.label for p in ladder_plan("INV-7", DUE, ["H-1", "H0"], now=on_h1_at_ten, grace=dt.timedelta(hours=2))
    ] == ["H-1", "H0"]
    assert ladder_plan("INV-7", DUE, ["H-3"], now=on_h1_at_ten) == []


def test_the_time_of_day_and_the_customers_zone() -> None:
    plan = ladder_plan("INV-7", "2026-12-10", ["H0"], now=NOW, at="08:30", tz="WIT")
    assert plan[0].send_at == dt.datetime(2026, 12, 10, 8, 30, tzinfo=WIT)
    assert plan[0].send_at.astimezone(WIB).hour == 6  # 08:30 WIT is 06:30 WIB
    assert ladder_plan("INV-7", DUE, ["H0"], now=NOW, at=dt.time(14, 0))[0].send_at.hour == 14
    # An aware due datetime counts by its date in the ladder's zone: 23:00 UTC on the 9th is the 10th in WIB.
    late = dt.datetime(2026, 12, 9, 23, 0, tzinfo=dt.UTC)
    assert ladder_plan("INV-7", late, ["H0"], now=NOW)[0].send_at.date() == DUE


def test_a_moved_due_date_keeps_the_keys_and_moves_the_steps() -> None:
    before = ladder_plan("INV-7", DUE, now=NOW)
    after = ladder_plan("INV-7", DUE + dt.timedelta(days=5), now=NOW)
    assert [p.notice_key for p in before] == [p.notice_key for p in after]
    assert all(b.send_at + dt.timedelta(days=5) == a.send_at for b, a in zip(before, after, strict=True))


def test_templates_overridden_by_kind_and_by_step() -> None:
    plan = ladder_plan(
        "INV-7", DUE, ["H-7", "H-1", "H0", "H+3"], now=NOW, templates={"reminder": "soft_nudge", "H+3": "final_warning"}
    )
    assert [p.template for p in plan] == ["soft_nudge", "soft_nudge", "due_today_reminder", "final_warning"]
    with pytest.raises(InvalidSchedule, match="templates key 'later'"):
        ladder_plan("INV-7", DUE, now=NOW, templates={"later": "x"})
    with pytest.raises(InvalidSchedule, match=r"templates\['overdue'\] must be a template name"):
        ladder_plan("INV-7", DUE, now=NOW, templates={"overdue": ""})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"due_date": "10/12/2026"}, "due_date must be a date such as '2026-12-10', got '10/12/2026'"),
        ({"due_date": dt.datetime(2026, 12, 10, 9, 0)}, "due_date '2026-12-10T09:00:00' has no time zone"),
        ({"at": "9am"}, "at must be a time of day 'HH:MM' such as '09:00', got '9am'"),
        ({"at": "24:00"}, "got '24:00'"),
        ({"tz": "Asia/Bandung"}, "unknown time zone 'Asia/Bandung'"),
        ({"now": dt.datetime(2026, 12, 3, 8, 0)}, "now '2026-12-03T08:00:00' has no time zone"),
        ({"steps": ["H-3", "H-1x"]}, "ladder step 'H-1x' does not parse"),
        ({"invoice_number": "I" * 200}, "more than 200"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"invoice_number": "INV-7", "due_date": DUE, "now": NOW, **kwargs}
    with pytest.raises(InvalidSchedule) as caught:
        ladder_plan(**args)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_a_zone_that_skips_an_hour() -> None:
    new_york = ZoneInfo("America/New_York")
    early = dt.datetime(2026, 3, 1, tzinfo=new_york)
    (step,) = ladder_plan("INV-7", "2026-03-08", ["H0"], now=early, at="02:30", tz=new_york)
    assert step.send_at.astimezone(dt.UTC) == dt.datetime(2026, 3, 8, 7, 30, tzinfo=dt.UTC)  # 03:30 EDT
    assert (step.send_at.hour, step.send_at.minute) == (3, 30)
