"""``wa-tasks demo``: the first thing a newcomer runs.

On the embedded defaults (its own SQLite and Redis under ``<data_dir>/demo``), it starts a worker
and a session host with two simulated sessions (priorities 1 and 2), sends a batch of billing
notifications, drops the primary's connection half-way so the rest fail over to the secondary,
and ends with what each simulated customer received. Exit code 1 if any message was lost or
received twice.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select

from models import SENT_OR_FINAL, Message, MessageStatus
from models.db import dispose_all, session_scope
from sessions_host.transports.simnet import LedgerEntry
from wa_tasks.settings import Settings, get_settings

PRIMARY, SECONDARY = "demo-1", "demo-2"

CUSTOMERS = [
    ("Budi Santoso", "0812-3456-7801"),
    ("Siti Rahayu", "0813-2233-4402"),
    ("Agus Wijaya", "0857-1122-3303"),
    ("Dewi Lestari", "0878-9988-7704"),
    ("Rudi Hartono", "0821-5566-7705"),
    ("Rina Kusuma", "0812-7788-9906"),
    ("Joko Prasetyo", "0896-1234-5607"),
    ("Maya Sari", "0838-4455-6608"),
    ("Andi Saputra", "0815-6677-8809"),
    ("Fitri Handayani", "0819-2345-6710"),
    ("Hendra Gunawan", "0852-3456-7811"),
    ("Lina Marlina", "0811-9876-5412"),
]

MESSAGES = [
    "Halo {name},\n\nIni adalah pengingat pembayaran untuk:\n📄 No. Invoice: INV-2026-{n:04d}\n"
    "💰 Jumlah: Rp150.000\n📅 Jatuh Tempo: 30 November 2026\n\nTerima kasih!",
    "✅ Pembayaran Berhasil!\n\nHalo {name}, pembayaran INV-2026-{n:04d} sebesar Rp200.000 telah kami terima.\n"
    "Layanan Anda telah diperpanjang.",
    "⚠️ Peringatan Expired\n\nHalo {name},\nLayanan internet Anda akan expired dalam:\n⏰ 3 hari\n\n"
    "Segera perpanjang untuk menghindari gangguan layanan.",
]


def _spawn(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log = log_path.open("ab")
    return subprocess.Popen(
        args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in processes:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


@click.command()
@click.option("--count", default=12, show_default=True, help="Messages to send.")
@click.option("--pace", default=1.0, show_default=True, help="Seconds between sends per session.")
@click.option("--timeout", default=180.0, show_default=True, help="Give up after this many seconds.")
def demo(count: int, pace: float, timeout: float) -> None:
    """Two simulated numbers, a batch of billing notifications, a failover half-way."""
    from models.migrate import upgrade
    from sessions_host.transports.simnet import SimNet
    from wa_tasks.admin import session_config as manage
    from wa_tasks.cli.up import child_env
    from wa_tasks.client import Client
    from wa_tasks.core.phone import normalize
    from wa_tasks.infra.redis_client import client_for
    from wa_tasks.infra.redis_server import EmbeddedRedis
    from wa_tasks.pipeline import live_state

    console = Console()
    base = get_settings()
    directory = base.data_path / "demo"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    settings = Settings(
        data_dir=directory,
        pace_seconds=pace,
        failover_grace_seconds=2.0,
        sim_delivered_after_seconds=1.0,
        sim_read_after_seconds=2.0,
        log_level=base.log_level,
    )
    env = child_env(settings)
    for name in ("WA_DATABASE_URL", "WA_REDIS_URL"):
        env.pop(name, None)
    env.update({"WA_PACE_SECONDS": str(pace), "WA_FAILOVER_GRACE_SECONDS": "2", "WA_SIM_READ_AFTER_SECONDS": "2"})

    console.print(f"[bold]wa-tasks demo[/] — files in {directory}")
    redis = EmbeddedRedis(directory, persistent=False)
    redis.start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        upgrade(settings.database)
        manage.add(settings, device_id="WA-1", session_id=PRIMARY, priority=1)
        manage.add(settings, device_id="WA-2", session_id=SECONDARY, priority=2)
        wa = [sys.executable, "-m", "wa_tasks"]
        processes.append(_spawn([*wa, "worker"], env, directory / "worker.log"))
        processes.append(_spawn([*wa, "sessions", "--hostname", "sessions@demo"], env, directory / "sessions.log"))
        rc = client_for(settings.redis)
        simnet = SimNet(rc)
        deadline = time.monotonic() + 60
        with console.status("starting a worker and a session host with two simulated numbers…"):
            while True:
                states = live_state.read(rc, [PRIMARY, SECONDARY])
                if all(s in states and states[s].connected for s in (PRIMARY, SECONDARY)):
                    break
                if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                    raise click.ClickException(f"the system did not come up; see {directory}/*.log")
                time.sleep(0.2)
        console.print(
            f"sessions connected: [green]{PRIMARY}[/] (priority 1, primary), [green]{SECONDARY}[/] (priority 2)"
        )

        client = Client(settings)
        ids = []
        for i in range(count):
            name, number = CUSTOMERS[i % len(CUSTOMERS)]
            text = MESSAGES[i % len(MESSAGES)].format(name=name, n=i + 1)
            ids.append(client.send(number, text=text, idempotency_key=f"demo-{i}"))

        dropped = False
        deadline = time.monotonic() + timeout
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            bar = progress.add_task("sending", total=count)
            while True:
                with session_scope(settings.database) as db:
                    statuses = Counter(db.scalars(select(Message.status).where(Message.id.in_(ids))).all())
                done = sum(n for s, n in statuses.items() if s in SENT_OR_FINAL)
                progress.update(bar, completed=done)
                if not dropped and done >= count // 2:
                    simnet.drop(PRIMARY)
                    dropped = True
                    progress.console.print(
                        f"[yellow]⚡ connection of {PRIMARY} dropped: the rest fail over to {SECONDARY}[/]"
                    )
                if done >= count:
                    break
                if time.monotonic() > deadline:
                    raise click.ClickException(
                        f"timed out with {count - done} message(s) unsent; see {directory}/*.log"
                    )
                time.sleep(0.2)

        with session_scope(settings.database) as db:
            rows = db.scalars(select(Message).where(Message.id.in_(ids))).all()
        ledger = simnet.ledger()
        copies = Counter(e.wa_message_id for e in ledger)
        table = Table("customer", "number", "received", "via", "first line", title="What each customer received")
        by_number: dict[str, list[LedgerEntry]] = {}
        for e in ledger:
            by_number.setdefault(e.to, []).append(e)
        for name, number in CUSTOMERS[:count]:
            digits = normalize(number).number
            got = by_number.get(digits, [])
            table.add_row(
                name,
                digits,
                str(len(got)),
                ", ".join(sorted({e.session for e in got})),
                got[0].text.splitlines()[0] if got else "-",
            )
        console.print(table)
        sent = [m for m in rows if m.status != MessageStatus.FAILED]
        per_session = Counter(m.session_id for m in sent)
        ok = len(ledger) == count and all(copies[m.wa_message_id or ""] == 1 for m in sent) and len(sent) == count
        console.print(f"sent by session: {dict(per_session)}; ledger entries: {len(ledger)} for {count} messages")
        if ok:
            console.print("[bold green]✓ every message was received exactly once[/]")
        else:
            failed = [f"{m.id}: {m.error_message}" for m in rows if m.status == MessageStatus.FAILED]
            raise click.ClickException(
                "not every message was received exactly once" + (f"; failed: {failed}" if failed else "")
            )
    finally:
        _stop(processes)
        redis.stop()
        dispose_all()
