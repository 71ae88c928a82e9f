"""``wa-tasks``: run the processes, manage sessions, send and inspect messages, drive the simulator."""

from __future__ import annotations

import json
import os
import sys

import click

from wa_tasks.cli.helpers import require_redis
from wa_tasks.errors import WaTasksError
from wa_tasks.settings import get_settings, is_loopback


class _Group(click.Group):
    """Turns wa-tasks errors into one clear line and exit code 2 instead of a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except WaTasksError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group)
@click.version_option(package_name="wa-tasks")
def cli() -> None:
    """wa-tasks: WhatsApp notifications for ISP billing, on Celery and Redis."""
    from wa_tasks.infra.logs import configure_logging

    configure_logging(get_settings().log_level)


@cli.command()
def migrate() -> None:
    """Create or upgrade the database schema (Alembic)."""
    from models.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database)
    click.echo(f"database is at the latest schema: {settings.describe()['database']}")


def _exec(args: list[str]) -> None:
    os.execvp(args[0], args)


@cli.command()
@click.option("--concurrency", "-c", type=int, default=None, help="Worker threads (default WA_WORKER_CONCURRENCY).")
@click.option("--pool", default="threads", show_default=True, help="Celery pool (threads, prefork, solo).")
@click.option(
    "--queues",
    "-Q",
    default=None,
    help="Queues to consume (default wa.default,wa.urgent; the Procfile's urgent worker: wa.urgent).",
)
@click.option("--name", "-n", "node", default="worker", show_default=True, help="Node name (NAME@host).")
def worker(concurrency: int | None, pool: str, queues: str | None, node: str) -> None:
    """Run the Celery worker on wa.default and wa.urgent (dispatch, public tasks, beat jobs)."""
    from wa_tasks.core.redis_keys import DEFAULT_QUEUE, URGENT_QUEUE

    settings = get_settings()
    require_redis()
    _exec(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "wa_tasks.infra.celery_app:app",
            "worker",
            "-Q",
            queues or f"{DEFAULT_QUEUE},{URGENT_QUEUE}",
            "-c",
            str(concurrency or settings.worker_concurrency),
            "-P",
            pool,
            "-E",
            "-n",
            f"{node}@%h",
            "--without-gossip",
            "--without-mingle",
            "-l",
            settings.log_level,
        ]
    )


@cli.command()
def beat() -> None:
    """Run Celery beat (sweeper, health check, retention, metrics roll-up); safe to run twice."""
    settings = get_settings()
    require_redis()
    settings.data_path.mkdir(parents=True, exist_ok=True)
    _exec(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "wa_tasks.infra.celery_app:app",
            "beat",
            "-l",
            settings.log_level,
            "-s",
            str(settings.data_path / "celerybeat-schedule"),
        ]
    )


@cli.command()
def flower() -> None:
    """Run Flower on the same broker settings (basic auth from WA_FLOWER_BASIC_AUTH)."""
    settings = get_settings()
    require_redis()
    if not settings.flower_basic_auth and not is_loopback(settings.flower_host):
        raise click.ClickException(
            f"refusing to serve Flower on {settings.flower_host} without WA_FLOWER_BASIC_AUTH=user:password"
        )
    if settings.flower_basic_auth:
        # Through the environment, so the password is not visible in the process list.
        os.environ["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth.get_secret_value()
    else:
        # No credentials: Flower listens on loopback only, and its JSON API is open to local tools.
        os.environ.setdefault("FLOWER_UNAUTHENTICATED_API", "true")
    _exec(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "wa_tasks.infra.celery_app:app",
            "flower",
            f"--port={settings.flower_port}",
            f"--address={settings.flower_host}",
            "--purge_offline_workers=60",
        ]
    )


@cli.command()
def web() -> None:
    """Run the HTTP API."""
    import uvicorn

    from wa_tasks.web.auth import check_bind_allowed

    settings = get_settings()
    check_bind_allowed(settings)
    uvicorn.run("wa_tasks.web.app:app", host=settings.web_host, port=settings.web_port, log_config=None)


@cli.command()
def redis() -> None:
    """Run the embedded Redis in the foreground (for running the Procfile's processes by hand)."""
    import signal
    import threading

    from wa_tasks.infra.redis_server import EmbeddedRedis

    settings = get_settings()
    server = EmbeddedRedis(settings.data_path)
    server.start()
    click.echo(f"Redis on {server.socket}; Ctrl-C stops it")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@cli.command()
@click.argument("to")
@click.option("--text", help="Message text.")
@click.option("--template", help="Template name (with --data).")
@click.option("--data", "data_json", help="Template data as JSON.")
@click.option("--priority", default="normal", show_default=True, help="urgent, high, normal, low or 0..9.")
@click.option("--idempotency-key", help="A repeated key sends nothing new.")
@click.option("--session", help="Send only through this session.")
@click.option("--at", "send_at", help="Send at this time: ISO 8601 with its offset (2026-12-03T09:00+07:00).")
@click.option("--expires", "expires_at", help="Not sent by this time (ISO 8601 with its offset): expired.")
@click.option("--notice-key", help="At most one message per key (invoice:INV-7:reminder:H-3).")
@click.option("--ref", help="What the message is about, e.g. an invoice number (for notices cancel).")
@click.option("--tz", help="The customer's time zone for the send window (default WA_TIMEZONE).")
@click.option("--callback-url", help="An http(s) URL that receives this message's status events.")
def send(
    to: str,
    text: str | None,
    template: str | None,
    data_json: str | None,
    priority: str,
    idempotency_key: str | None,
    session: str | None,
    send_at: str | None,
    expires_at: str | None,
    notice_key: str | None,
    ref: str | None,
    tz: str | None,
    callback_url: str | None,
) -> None:
    """Queue a message to TO and print its id (with --at: stored scheduled, sent when due)."""
    from wa_tasks import client
    from wa_tasks.pipeline.request import SendRequest

    try:
        data = json.loads(data_json) if data_json else None
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--data") from None
    request = SendRequest(
        to,
        text=text,
        template=template,
        data=data,
        priority=int(priority) if priority.isdigit() else priority,
        idempotency_key=idempotency_key,
        session=session,
        send_at=send_at,
        expires_at=expires_at,
        notice_key=notice_key,
        ref=ref,
        tz=tz,
        callback_url=callback_url,
    )
    click.echo(client.send_request(request))


@cli.command()
@click.argument("message_id")
def status(message_id: str) -> None:
    """Print a message's status as JSON."""
    from wa_tasks import client

    click.echo(json.dumps(client.status(message_id), indent=2))


def _register() -> None:
    from wa_tasks.cli import demo, keys, notices, sessions, sim, stats, templates, up, webhooks

    cli.add_command(up.up)
    cli.add_command(keys.keys)
    cli.add_command(sessions.sessions)
    cli.add_command(sim.sim)
    cli.add_command(demo.demo)
    cli.add_command(templates.templates)
    cli.add_command(stats.stats)
    cli.add_command(notices.notices)
    cli.add_command(webhooks.webhooks)


_register()


def main() -> None:
    cli(prog_name="wa-tasks")


if __name__ == "__main__":
    main()
