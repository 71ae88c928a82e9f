"""QR codes of sessions waiting to be linked, rendered by the project (segno): text for a
terminal, a PNG data URL for the API and the pages."""

from __future__ import annotations

import io

import segno


def terminal(code: str) -> str:
    """The QR code as text for a terminal (two modules per character)."""
    out = io.StringIO()
    segno.make(code, error="l").terminal(out=out, compact=True)
    return out.getvalue()


def png_data_url(code: str, scale: int = 6) -> str:
    """The QR code as ``data:image/png;base64,…`` (as ``GET …/qr`` answers it, ready for an ``<img src>``)."""
    return str(segno.make(code, error="l").png_data_uri(scale=scale, border=2))
