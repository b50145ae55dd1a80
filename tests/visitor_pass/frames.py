"""Camera frames with a phone's QR code in them: a real rendered PNG, placed into a real photograph
at the size and tilt of a phone held up to a gate camera. Used by the reader tests and the bench."""

from __future__ import annotations

import cv2
import numpy as np

from tests.face_photos import Image, as_camera_frame, astronaut, jpeg


def phone_frame(png: bytes, *, side_px: int = 170, tilt_deg: float = 12.0, perspective: float = 0.06,
                at: tuple[int, int] = (380, 150), background: Image | None = None, quality: int = 85) -> Image:
    """A 640x480 BGR frame: `background` (a real photo) with the QR code `png` shown on a phone
    screen `side_px` wide, rotated by `tilt_deg`, foreshortened by `perspective`, JPEG-compressed."""
    frame = as_camera_frame(background if background is not None else astronaut()).copy()
    qr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert qr is not None
    # The phone screen: the code on white with a dark bezel, as it looks on a handset.
    screen = cv2.copyMakeBorder(qr, 12, 12, 12, 12, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    screen = cv2.copyMakeBorder(screen, 10, 10, 10, 10, cv2.BORDER_CONSTANT, value=(25, 25, 25))
    h, w = screen.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])  # type: ignore[list-item]
    # Foreshorten (the top edge tilted away), then rotate and scale around the placement point.
    p = perspective * side_px
    square = np.float32([[p, 0], [side_px - p, 0], [side_px, side_px], [0, side_px]])  # type: ignore[list-item]
    angle = np.deg2rad(tilt_deg)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=np.float32)
    centre = np.float32([side_px / 2, side_px / 2])  # type: ignore[list-item]
    dst = ((square - centre) @ rot.T + centre + np.float32(at)).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    size = (frame.shape[1], frame.shape[0])
    warped = cv2.warpPerspective(screen, matrix, size, flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), matrix, size, flags=cv2.INTER_NEAREST)
    frame[mask > 0] = warped[mask > 0]
    # A camera's softness and compression.
    frame = cv2.GaussianBlur(frame, (3, 3), 0.6)
    decoded = cv2.imdecode(np.frombuffer(jpeg(frame, quality), np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    return decoded  # type: ignore[return-value]
