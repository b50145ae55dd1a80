"""Typed reasons a photo or template cannot be used."""

from __future__ import annotations


class FaceError(Exception):
    """A face could not be used; `reason` is a stable code for replies and denials."""

    reason = "FACE_ERROR"


class CorruptImage(FaceError):
    """Not a decodable JPEG/PNG, or an absurd size."""

    reason = "BAD_IMAGE"


class NoFaceFound(FaceError):
    reason = "NO_FACE_FOUND"


class FaceTooSmall(FaceError):
    reason = "FACE_TOO_SMALL"


class ModelMismatch(FaceError):
    """An embedding computed by another model than the one this site matches with."""

    reason = "FACE_MODEL_MISMATCH"


class ModelFileError(FaceError):
    """Model files missing, or not the files pinned in the settings."""

    reason = "FACE_MODEL_FILES"
