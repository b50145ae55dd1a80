"""The gate camera's QR path: a frame in, a `qr` credential out (the auth worker judges the pass)."""

from __future__ import annotations

import time
from pathlib import Path

from schemas.access import QrCredential
from visitor_pass.reader import BadImage, Frame, NoQrFound, QrReadError, read_all

__all__ = ["BadImage", "NoQrFound", "QrReadError", "QrScanner", "credential_from_frame", "credential_from_image_file"]

_MAX_PAYLOAD = 2048  # QrCredential.payload


def credential_from_frame(frame: Frame | bytes) -> QrCredential:
    """The QR code in a camera frame (BGR array or encoded image bytes) as a credential.

    Raises NoQrFound when the frame holds no readable QR code that could be a credential (too long
    or empty text counts as none), BadImage when the input is not a usable image.
    """
    for text in read_all(frame):
        if 0 < len(text) <= _MAX_PAYLOAD:
            return QrCredential(payload=text)
    raise NoQrFound("no QR code in the frame fits a credential")


def credential_from_image_file(path: Path) -> QrCredential:
    """For `passage gate --qr-image FILE`: the QR code in a photo or screenshot."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadImage(f"cannot read {path}: {exc.strerror}") from None
    return credential_from_frame(data)


class QrScanner:
    """Turns a stream of camera frames into presentations: a code held in front of the camera is
    seen in many frames, but is presented once per `hold_off_s` (a pass must not spend a use per frame)."""

    def __init__(self, hold_off_s: float = 5.0) -> None:
        self._hold_off_s = hold_off_s
        self._last: dict[str, float] = {}

    def scan(self, frame: Frame | bytes, now: float | None = None) -> QrCredential | None:
        """The credential to present for this frame, or None (no code, or the same code shown just now)."""
        try:
            credential = credential_from_frame(frame)
        except NoQrFound:
            return None
        moment = time.monotonic() if now is None else now
        self._last = {p: t for p, t in self._last.items() if moment - t < self._hold_off_s}
        if credential.payload in self._last:
            return None
        self._last[credential.payload] = moment
        return credential
