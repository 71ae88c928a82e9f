"""The Celery application of wa-tasks, configured from ``celeryconfig.py``."""

from __future__ import annotations

import importlib

from celery import Celery, signals

from wa_tasks.infra import broker_fix
from wa_tasks.infra.logs import configure_logging
from wa_tasks.settings import Settings, get_settings

broker_fix.apply()


def make_app(settings: Settings | None = None) -> Celery:
    """A Celery app on ``celeryconfig``; with ``settings``, pointed at their broker."""
    config = importlib.import_module("celeryconfig")
    if not getattr(config, "WA_TASKS_CONFIG", False):
        raise RuntimeError(
            f"the module 'celeryconfig' found at {getattr(config, '__file__', '?')} is not wa-tasks' own; "
            "rename your project's celeryconfig or put wa-tasks first on sys.path"
        )
    app = Celery("wa_tasks")
    app.config_from_object(config)
    if settings is not None:
        app.conf.broker_url = settings.broker_url
    return app


app = make_app()

_apps: dict[str, Celery] = {}


def app_for(settings: Settings) -> Celery:
    """The default app when ``settings`` use its broker, else an app of their own (cached)."""
    if settings.broker_url == app.conf.broker_url:
        return app
    if settings.broker_url not in _apps:
        _apps[settings.broker_url] = make_app(settings)
    return _apps[settings.broker_url]


app.autodiscover_tasks(["wa_tasks"], related_name="tasks", force=True)


@signals.setup_logging.connect
def _setup_logging(**_: object) -> None:
    # Celery must not install its own root handlers: one configured place for logs.
    configure_logging(get_settings().log_level)
