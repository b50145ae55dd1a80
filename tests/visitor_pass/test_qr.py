"""QR codes: rendered with segno, read back from the PNG and from camera frames of a phone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pyzbar.pyzbar import ZBarSymbol
from pyzbar.pyzbar import decode as zbar_decode

from tests.face_photos import no_face_photo
from tests.visitor_pass.frames import phone_frame
from visitor_pass import reader
from visitor_pass.qr import QrRenderError, render
from visitor_pass.reader import BadImage, NoQrFound, read_all, read_qr
from visitor_pass.token import PassClaims, PassSigner

START = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def token() -> str:
    signer = PassSigner(Ed25519PrivateKey.generate())
    return signer.sign(PassClaims("0123456789abcdef0123456789abcdef", START, START + timedelta(hours=3),
                                  ("lobby", "garage"), 2))


def test_png_decodes_with_pyzbar_to_the_same_payload(token: str) -> None:
    qr = render(token)
    assert qr.png.startswith(b"\x89PNG") and len(qr.png) < 4096
    assert qr.version <= 10  # low density: easy for a cheap gate camera
    image = cv2.imdecode(np.frombuffer(qr.png, np.uint8), cv2.IMREAD_GRAYSCALE)
    found = zbar_decode(image, symbols=[ZBarSymbol.QRCODE])
    assert [s.data.decode() for s in found] == [token]
    assert read_qr(qr.png) == token


def test_svg_is_a_standalone_svg(token: str) -> None:
    svg = render(token).svg
    assert svg.startswith("<svg") and "xmlns=" in svg and svg.rstrip().endswith("</svg>")
    assert "<?xml" not in svg


@pytest.mark.parametrize("side, tilt", [(120, 0), (170, 12), (200, -25)])
def test_phone_held_at_the_camera_is_read(token: str, side: int, tilt: float) -> None:
    frame = phone_frame(render(token).png, side_px=side, tilt_deg=tilt)
    assert frame.shape == (480, 640, 3)
    assert read_qr(frame) == token
    ok, jpeg = cv2.imencode(".jpg", frame)
    assert ok and read_qr(jpeg.tobytes()) == token


def test_opencv_fallback_reads_the_same_frame(token: str) -> None:
    frame = phone_frame(render(token).png, side_px=190, tilt_deg=10)
    assert reader._read_opencv(reader.to_gray(frame)) == [token]


def test_frame_without_a_qr_code() -> None:
    with pytest.raises(NoQrFound):
        read_qr(cv2.resize(no_face_photo(), (640, 480)))  # a real photo, no code in it
    with pytest.raises(NoQrFound):
        read_all(np.full((480, 640, 3), 128, np.uint8))


@pytest.mark.parametrize("bad", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50,
                                 np.zeros((10, 10), np.uint8), np.zeros((480, 640, 3), np.float32)])
def test_unusable_input_is_a_bad_image(bad: object) -> None:
    with pytest.raises(BadImage):
        read_qr(bad)  # type: ignore[arg-type]


def test_text_too_long_for_a_qr_code() -> None:
    with pytest.raises(QrRenderError):
        render("A" * 8000)
