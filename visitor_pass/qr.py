"""Render a pass token as a QR code (segno): PNG bytes for phones, SVG text for web pages."""

from __future__ import annotations

import io
from dataclasses import dataclass

import segno

# M recovers ~15% damage (a cracked screen, a glare spot) and keeps the code small.
ERROR_LEVEL = "m"
# The quiet zone the QR standard asks for; readers fail more often without it.
BORDER = 4


class QrRenderError(ValueError):
    """The text does not fit in a QR code."""


@dataclass(frozen=True, slots=True)
class RenderedQr:
    png: bytes
    svg: str
    version: int  # QR version (1..40): size of the code, 21 + 4 * (version - 1) modules a side


def render(text: str, scale: int = 8) -> RenderedQr:
    """The QR code for `text`, as PNG (`scale` pixels a module) and SVG."""
    try:
        code = segno.make(text, error=ERROR_LEVEL, micro=False, boost_error=False)
    except (segno.DataOverflowError, ValueError) as exc:
        raise QrRenderError(f"cannot encode {len(text)} characters as a QR code: {exc}") from None
    png = io.BytesIO()
    code.save(png, kind="png", scale=scale, border=BORDER)
    svg = io.BytesIO()
    code.save(svg, kind="svg", scale=scale, border=BORDER, xmldecl=False, svgns=True, nl=False)
    return RenderedQr(png.getvalue(), svg.getvalue().decode("utf-8"), int(code.version))
