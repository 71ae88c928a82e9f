"""What several ``wa-tasks`` commands share (kept apart from ``main`` so that the command modules
it registers do not import it back)."""

from __future__ import annotations

import click

from wa_tasks.settings import get_settings


def require_redis() -> None:
    """Say clearly what to do when the embedded Redis is not running."""
    settings = get_settings()
    if settings.embedded_redis:
        from wa_tasks.infra.redis_server import ping

        if not ping(settings.redis_socket):
            raise click.ClickException(
                f"no Redis at {settings.redis_socket}: start everything with `wa-tasks up`, "
                "or the Redis alone with `wa-tasks redis`, or set WA_REDIS_URL"
            )
