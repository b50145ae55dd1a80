"""Read the text of a QR code from a camera frame: pyzbar (libzbar0) first, OpenCV's detector as
a fallback (it copes with some perspective and blur zbar misses, and works where libzbar is absent)."""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

Frame = npt.NDArray[np.uint8]

# Refuse absurd inputs before decoding them: a gate camera frame is a few megapixels at most.
MAX_IMAGE_BYTES = 16 * 1024 * 1024
MAX_PIXELS = 4096 * 4096


class QrReadError(Exception):
    """No QR text could be taken from the input."""


class NoQrFound(QrReadError):
    """The frame was read but holds no decodable QR code."""


class BadImage(QrReadError):
    """The input is not an image this reader can use (corrupt, empty, too large, wrong shape)."""


def _zbar() -> Any:
    """pyzbar's decode, or None when libzbar is not installed (the OpenCV fallback still reads)."""
    try:
        from pyzbar import pyzbar
    except ImportError:  # raised when the shared library is missing
        return None
    return pyzbar


_PYZBAR = _zbar()


def to_gray(image: Frame | bytes) -> Frame:
    """A grayscale frame from a BGR / BGRA / gray array, or from encoded image bytes (PNG, JPEG...)."""
    if isinstance(image, bytes | bytearray | memoryview):
        data = bytes(image)
        if not data or len(data) > MAX_IMAGE_BYTES:
            raise BadImage(f"image of {len(data)} bytes (limit {MAX_IMAGE_BYTES})")
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        if decoded is None:
            raise BadImage("not a decodable image")
        image = decoded.astype(np.uint8, copy=False)
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise BadImage("expected an 8-bit image array (H x W, or H x W x 3 BGR)")
    if image.shape[0] * image.shape[1] > MAX_PIXELS or min(image.shape[:2]) < 21:
        raise BadImage(f"frame of {image.shape[1]}x{image.shape[0]} pixels is out of range")
    if image.ndim == 2:
        return image
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)  # type: ignore[return-value]
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)  # type: ignore[return-value]
    raise BadImage(f"unexpected channel count {image.shape[2]}")


def read_all(image: Frame | bytes) -> list[str]:
    """Every QR text found in the frame (zbar's, else OpenCV's); raises NoQrFound or BadImage."""
    gray = to_gray(image)
    texts = _read_zbar(gray) or _read_opencv(gray)
    if not texts:
        raise NoQrFound("no QR code found in the frame")
    return texts


def read_qr(image: Frame | bytes) -> str:
    """The text of the QR code in the frame (the first one, if a frame shows several)."""
    return read_all(image)[0]


def _read_zbar(gray: Frame) -> list[str]:
    if _PYZBAR is None:
        return []
    found = _PYZBAR.decode(gray, symbols=[_PYZBAR.ZBarSymbol.QRCODE])
    return [t for t in (_text(s.data) for s in found) if t]


def _read_opencv(gray: Frame) -> list[str]:
    # The ArUco-based detector (OpenCV 4.8+) finds small, tilted codes the classic one misses, in a
    # few ms; the classic one needs a 2x upscale for a phone at arm's length and costs ~50 ms a frame,
    # so it is only the fallback's fallback on older OpenCV builds.
    if hasattr(cv2, "QRCodeDetectorAruco"):
        detector: Any = cv2.QRCodeDetectorAruco()
        image = gray
    else:
        detector = cv2.QRCodeDetector()
        image = cv2.resize(gray, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC).astype(np.uint8, copy=False)
    try:
        text, points, _ = detector.detectAndDecode(image)
    except cv2.error as exc:
        log.debug("OpenCV QR detector failed: %s", exc)
        return []
    return [text] if points is not None and text else []


def _text(data: bytes) -> str | None:
    # Binary QR content is nobody's pass: reported as not found rather than guessed at.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
