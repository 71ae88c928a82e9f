"""Templates kept in the database: list, get, create, update, deactivate, preview,
and installing the shipped defaults.

Every write goes through here, so a template is always checked before it is saved and its
``variables`` are extracted from its content on every save. Templates are deactivated, never
deleted: sent messages keep pointing at the template they were made from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Template, utcnow
from models.db import session_scope
from wa_tasks.core import rendering, windows
from wa_tasks.core.default_templates import DEFAULTS
from wa_tasks.core.timefmt import iso_or_none
from wa_tasks.errors import InvalidSchedule, InvalidTemplate, TemplateRenderError, UnknownTemplate
from wa_tasks.pipeline import compose
from wa_tasks.settings import Settings

#: Template names: letters, digits, ``_``, ``.``, ``-``; no spaces (``payment_reminder``).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
#: Language codes: ``id``, ``en``, ``jav`` or a region variant ``en-US`` (the column holds 5 characters).
LANGUAGE = re.compile(r"[a-z]{2}(-[A-Za-z]{2})?|[a-z]{3}")
#: What a template's ``send_window`` is set to for "no window of its own: the category's".
CATEGORY_WINDOW = "category"
#: The longest ``send_window`` (the column's size).
MAX_WINDOW = 100


class _Keep:
    """The value of a field an update leaves as it is (where None means "clear")."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()

#: What a template's ``send_window`` is set to for "no window of its own: the category's".
CATEGORY_WINDOW = "category"


def view(row: Template) -> dict[str, Any]:
    """A template as the API and the CLI show it."""
    return {
        "id": row.id,
        "name": row.name,
        "category": row.category,
        "type": row.type,
        "content": row.content,
        "variables": list(row.variables or []),
        "language": row.language,
        "sendWindow": row.send_window,
        "isActive": row.is_active,
        "createdAt": iso_or_none(row.created_at),
        "updatedAt": iso_or_none(row.updated_at),
    }


def listing(settings: Settings, *, include_inactive: bool = True) -> list[dict[str, Any]]:
    with session_scope(settings.database) as db:
        query = select(Template).order_by(Template.name)
        if not include_inactive:
            query = query.where(Template.is_active.is_(True))
        return [view(row) for row in db.scalars(query)]


def get(settings: Settings, name: str) -> dict[str, Any]:
    with session_scope(settings.database) as db:
        return view(_row(db, name))


def create(
    settings: Settings,
    name: str,
    content: str,
    *,
    category: str = "notification",
    type: str = "text",
    language: str = "id",
    is_active: bool = True,
    send_window: str | None = None,
) -> dict[str, Any]:
    """Save a new template; :class:`InvalidTemplate` if it is not valid or the name is taken.
    ``send_window``: its own hours (:func:`check_window`); None: its category's."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidTemplate(
            f"template name {name!r} is not valid: use 1-100 letters, digits, '_', '.' or '-' (e.g. payment_reminder)"
        )
    values = _checked(name, content=content, category=category, type=type, language=language, is_active=is_active)
    values["send_window"] = check_window(send_window, name)
    try:
        with session_scope(settings.database) as db:
            if db.scalar(select(Template.id).where(Template.name == name)) is not None:
                raise InvalidTemplate(f"template {name!r} already exists; change it with update")
            row = Template(name=name, **values)
            db.add(row)
            db.flush()
            return view(row)
    except IntegrityError:
        raise InvalidTemplate(f"template {name!r} already exists; change it with update") from None


def update(
    settings: Settings,
    name: str,
    *,
    content: str | None = None,
    category: str | None = None,
    type: str | None = None,
    language: str | None = None,
    is_active: bool | None = None,
    send_window: str | None | _Keep = KEEP,
) -> dict[str, Any]:
    """Change the given fields of a template (the others stay as they are). ``send_window``: its
    own hours; None or ``"category"`` goes back to its category's; left out, it stays."""
    window = KEEP if isinstance(send_window, _Keep) else check_window(send_window, name)
    with session_scope(settings.database) as db:
        row = _row(db, name)
        values = _checked(
            name,
            content=row.content if content is None else content,
            category=row.category if category is None else category,
            type=row.type if type is None else type,
            language=row.language if language is None else language,
            is_active=row.is_active if is_active is None else is_active,
        )
        if not isinstance(window, _Keep):
            values["send_window"] = window
        for key, value in values.items():
            setattr(row, key, value)
        row.updated_at = utcnow()
        db.flush()
        return view(row)


def deactivate(settings: Settings, name: str) -> dict[str, Any]:
    """Stop a template from being used for new messages (sent ones keep their record)."""
    return update(settings, name, is_active=False)


def preview(
    settings: Settings,
    name: str | None = None,
    data: Mapping[str, Any] | None = None,
    *,
    content: str | None = None,
    type: str = "text",
) -> dict[str, Any]:
    """What template ``name`` (or unsaved ``content`` of ``type``) sends with ``data``: ``text``,
    ``variables``, ``missing`` and ``warnings``. Reads only; never stores or queues anything."""
    if (name is None) == (content is None):
        raise InvalidTemplate("preview needs exactly one of a template name or content")
    if data is not None and not isinstance(data, Mapping):
        raise InvalidTemplate(f"preview data must be a mapping of template variables, got {data.__class__.__name__}")
    if name is not None:
        with session_scope(settings.database) as db:
            row = _row(db, name)
            content, type, label = row.content, row.type, f"template {name!r}"
    else:
        label = "template"
    assert content is not None
    finish, warnings = compose.preview_finisher(type, data)
    result = rendering.preview(content, data, name=label, finish=finish)
    return {**result.as_dict(), "warnings": warnings + result.warnings, "type": type}


def install_defaults(settings: Settings) -> dict[str, list[str]]:
    """Add the shipped templates that are missing; an existing one (edited, deactivated or not) is
    left as it is. Returns ``{"installed": [...], "kept": [...]}``."""
    installed, kept = [], []
    with session_scope(settings.database) as db:
        present = set(db.scalars(select(Template.name).where(Template.name.in_(list(DEFAULTS)))))
        for default in DEFAULTS.values():
            if default.name in present:
                kept.append(default.name)
                continue
            db.add(
                Template(
                    name=default.name,
                    category=default.category,
                    type=default.type,
                    content=default.content,
                    variables=rendering.variables_of(default.content, name=default.name),
                    language=default.language,
                    is_active=True,
                )
            )
            installed.append(default.name)
    return {"installed": installed, "kept": kept}


def name_of(settings: Settings, template_id: int) -> str:
    """The name of the template with database id ``template_id`` (``templateId`` in the HTTP API)."""
    with session_scope(settings.database) as db:
        name = db.scalar(select(Template.name).where(Template.id == template_id))
    if name is None:
        raise UnknownTemplate(f"no template with id {template_id}; list them with `wa-tasks templates list`")
    return name


def check_window(window: object, name: str = "") -> str | None:
    """A template's own send window, checked with the parser the ``WA_WINDOW_*`` settings use
    (``"08:00-20:00"``, ranges comma-separated, ``"always"``); returns the text to store, or None
    for None, ``""`` and ``"category"`` (the category's window)."""
    if window is None or (isinstance(window, str) and window.strip().lower() in ("", CATEGORY_WINDOW)):
        return None
    label = f"template {name!r}: send_window" if name else "send_window"
    if not isinstance(window, str):
        raise InvalidTemplate(
            f"{label} must be hours such as '08:00-20:00', 'always', or 'category' for the category's window; "
            f"got {window!r}"
        )
    if len(window) > MAX_WINDOW:
        raise InvalidTemplate(f"{label} is {len(window)} characters; the limit is {MAX_WINDOW}: {window[:40]!r}...")
    try:
        parsed = windows.parse_window(window, field=label)
    except InvalidSchedule as exc:
        raise InvalidTemplate(f"{exc}; or 'category' for the category's window") from None
    return parsed.text


def _row(db: Session, name: str) -> Template:
    row = db.scalar(select(Template).where(Template.name == name)) if isinstance(name, str) else None
    if row is None:
        raise UnknownTemplate(f"unknown template {name!r}; list them with `wa-tasks templates list`")
    return row


def _checked(
    name: str, *, content: object, category: object, type: object, language: object, is_active: object
) -> dict[str, Any]:
    """Validated column values, with ``variables`` extracted from ``content``."""
    label = f"template {name!r}"
    if category not in compose.CATEGORIES:
        raise InvalidTemplate(f"{label}: category must be one of {', '.join(compose.CATEGORIES)}, got {category!r}")
    if type not in compose.TYPES:
        raise InvalidTemplate(f"{label}: type must be one of {', '.join(compose.TYPES)}, got {type!r}")
    if not isinstance(language, str) or not LANGUAGE.fullmatch(language):
        raise InvalidTemplate(f"{label}: language must be a code such as 'id' or 'en', got {language!r}")
    if not isinstance(is_active, bool):
        raise InvalidTemplate(f"{label}: is_active must be true or false, got {is_active!r}")
    if not isinstance(content, str) or not content.strip():
        raise InvalidTemplate(f"{label}: content is empty")
    if "\x00" in content:
        raise InvalidTemplate(f"{label}: content contains a NUL character (\\u0000)")
    if len(content) > rendering.MAX_LENGTH:
        raise InvalidTemplate(f"{label}: content is {len(content)} characters; the limit is {rendering.MAX_LENGTH}")
    try:
        variables = rendering.variables_of(content, name=label)
        # A template over the render limits whatever its data could never be sent: refused now,
        # not at each send or for each recipient of a bulk job.
        rendering.check_limits(content, name=label)
    except TemplateRenderError as exc:
        raise InvalidTemplate(str(exc)) from None
    return {
        "content": content,
        "category": category,
        "type": type,
        "language": language,
        "is_active": is_active,
        "variables": variables,
    }
