"""What a message becomes from its template: the text the customer sees, its type, and its media.

- ``text``: the rendered content.
- ``media``: the rendered content is the caption of an image (or document) given as
  ``data["media_url"]`` (``mediaUrl``, the camelCase spelling billing apps use, works too) or as
  bytes to ``Client.send_media``.
- ``button`` and ``list``: WhatsApp's interactive messages often do not render (they are reserved
  to the Business API, and many phones show an empty bubble or nothing for them when sent from an
  ordinary account), so wa-tasks sends a plain-text fallback instead: the rendered text, the
  options numbered, and "Balas dengan angka pilihan Anda." The options come from the data:
  ``buttons`` (a list of labels, or of ``{"text": ...}``/``{"title": ...}``), or
  ``sections`` (``[{"title": ..., "rows": [{"title": ..., "description": ...}]}]``), and an optional
  ``footer``. The stored ``content`` is exactly the text sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from wa_tasks.core import rendering
from wa_tasks.errors import InvalidMessage
from wa_tasks.pipeline import media as media_mod

#: Template categories. Only ``promotion`` is held back for customers who opted out.
CATEGORIES = ("notification", "reminder", "promotion")
#: Template types.
TYPES = ("text", "media", "button", "list")
#: The last line of a button or list fallback.
REPLY_HINT = "Balas dengan angka pilihan Anda."


@dataclass(frozen=True)
class Composed:
    """A rendered message, ready to be stored."""

    message_type: str
    content: str
    media: media_mod.Media | None = None


def compose(
    *,
    name: str,
    type: str,
    content: str,
    data: Mapping[str, Any] | None,
    media: media_mod.Media | None = None,
) -> Composed:
    """Render template ``name`` (of ``type``) with ``data``; raise an InvalidRequest subclass."""
    label = f"template {name!r}"
    text = rendering.render(content, data, name=label)
    values = data or {}
    if type == "media":
        if media is None:
            url = values.get("media_url", values.get("mediaUrl"))
            if url is None:
                raise InvalidMessage(
                    f"{label} is a media template: give the image's http(s) URL as data['media_url'] "
                    "(or send bytes with send_media)"
                )
            media = media_mod.Media(url=media_mod.check_url(url, what=f"{label}: media_url"))
        return Composed("media", text, media)
    if media is not None:
        return Composed("media", text, media)
    if type in ("button", "list"):
        text = fallback(type, text, values, label=label)
        if len(text) > rendering.MAX_LENGTH:
            raise InvalidMessage(
                f"{label} with its options is {len(text)} characters; the limit is {rendering.MAX_LENGTH}"
            )
        return Composed(type, text)
    return Composed("text", text)


def fallback(type: str, text: str, data: Mapping[str, Any], *, label: str = "template") -> str:
    """The plain-text form of a button or list message (see the module docstring)."""
    footer = data.get("footer")
    if footer is not None and not isinstance(footer, str):
        raise InvalidMessage(f"{label}: footer must be a string")
    if type == "button":
        buttons = data.get("buttons")
        if not isinstance(buttons, Sequence) or isinstance(buttons, str) or not buttons:
            raise InvalidMessage(f"{label} is a button template: give data['buttons'], a list of labels")
        labels = [_label(b, f"{label}: buttons[{i}]") for i, b in enumerate(buttons)]
        blocks = ["\n".join(f"{n}. {text_}" for n, text_ in enumerate(labels, 1))]
    elif type == "list":
        sections = data.get("sections")
        if not isinstance(sections, Sequence) or isinstance(sections, str) or not sections:
            raise InvalidMessage(
                f"{label} is a list template: give data['sections'], "
                "[{'title': ..., 'rows': [{'title': ..., 'description': ...}]}]"
            )
        blocks, number = [], 0
        for i, section in enumerate(sections):
            where = f"{label}: sections[{i}]"
            rows = section.get("rows") if isinstance(section, Mapping) else None
            if not isinstance(rows, Sequence) or isinstance(rows, str) or not rows:
                raise InvalidMessage(f"{where} needs 'rows', a non-empty list of {{'title': ...}}")
            lines = []
            title = section.get("title")
            if title:
                lines.append(f"*{title}*")
            for j, row in enumerate(rows):
                number += 1
                line = f"{number}. {_label(row, f'{where}.rows[{j}]')}"
                description = row.get("description") if isinstance(row, Mapping) else None
                if description:
                    line += f" - {description}"
                lines.append(line)
            blocks.append("\n".join(lines))
    else:
        raise InvalidMessage(f"{label}: a {type!r} message has no plain-text fallback")
    parts = [text.rstrip(), *blocks, REPLY_HINT + (f"\n{footer.strip()}" if footer and footer.strip() else "")]
    return "\n\n".join(p for p in parts if p)


def _label(option: object, where: str) -> str:
    if isinstance(option, str) and option.strip():
        return option.strip()
    if isinstance(option, Mapping):
        for key in ("text", "title", "displayText"):
            value = option.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
        nested = option.get("buttonText")  # Baileys' {buttonText: {displayText}}
        if isinstance(nested, Mapping) and isinstance(nested.get("displayText"), str):
            return str(nested["displayText"]).strip()
    raise InvalidMessage(f"{where} must be a label or {{'text': label}}, got {option!r}")


def preview_finisher(type: str, data: Mapping[str, Any] | None) -> tuple[Callable[[str], str], list[str]]:
    """For a preview: the function that turns rendered text into what is sent, and warnings about
    what the sample data lacks for this type (a preview shows them instead of refusing)."""
    values = data or {}
    if type in ("button", "list"):
        key = "buttons" if type == "button" else "sections"
        if not values.get(key):
            return (lambda text: text), [f"data has no {key!r}: a {type} message would be refused without options"]
        return (lambda text: fallback(type, text, values)), []
    if type == "media" and not (values.get("media_url") or values.get("mediaUrl")):
        return (lambda text: text), ["data has no 'media_url': a media message needs the image's URL (or bytes)"]
    return (lambda text: text), []


def jsonable(data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``data`` as it can be stored in a JSON column: dates as ISO strings, time spans as seconds,
    Decimals as strings (they render the same through the formatting helpers)."""
    if data is None:
        return None
    return {str(k): _plain(v, f"data[{k!r}]") for k, v in data.items()}


def _plain(value: Any, where: str) -> Any:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dt.date):  # datetime too
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise InvalidMessage(
        f"{where} is a {type(value).__name__}, which cannot be stored with the message; "
        "give strings, numbers, dates, lists or mappings"
    )
