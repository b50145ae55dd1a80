"""Reason codes for access decisions and event codes for the audit stream."""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    """Why an access request was granted or denied."""

    GRANTED = "GRANTED"
    UNKNOWN_CREDENTIAL = "UNKNOWN_CREDENTIAL"
    CREDENTIAL_REVOKED = "CREDENTIAL_REVOKED"
    USER_INACTIVE = "USER_INACTIVE"
    NOT_PERMITTED_AT_GATE = "NOT_PERMITTED_AT_GATE"
    OUTSIDE_SCHEDULE = "OUTSIDE_SCHEDULE"
    UNKNOWN_GATE = "UNKNOWN_GATE"
    GATE_MISMATCH = "GATE_MISMATCH"
    STALE_REQUEST = "STALE_REQUEST"
    MALFORMED_REQUEST = "MALFORMED_REQUEST"
    UNSUPPORTED_CREDENTIAL = "UNSUPPORTED_CREDENTIAL"
    FACE_NOT_MATCHED = "FACE_NOT_MATCHED"
    NO_FACE_FOUND = "NO_FACE_FOUND"
    FACE_TOO_SMALL = "FACE_TOO_SMALL"
    BAD_IMAGE = "BAD_IMAGE"
    FACE_MODEL_MISMATCH = "FACE_MODEL_MISMATCH"
    # Visitor passes (QR).
    PASS_EXPIRED = "PASS_EXPIRED"
    PASS_NOT_YET_VALID = "PASS_NOT_YET_VALID"
    PASS_USED_UP = "PASS_USED_UP"
    PASS_REVOKED = "PASS_REVOKED"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    # Too many wrong PINs for this unit at this gate: the keypad is locked for a while.
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"
    # Offline at the gate: no face templates on the edge, use PIN / unit code.
    OFFLINE_UNSUPPORTED = "OFFLINE_UNSUPPORTED"
    # Decided at the gate, never sent by a worker: no answer in time, door stays shut.
    TIMEOUT = "TIMEOUT"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class EventCode(StrEnum):
    """Codes of records on the `events/...` audit stream."""

    ACCESS_GRANTED = "ACCESS_GRANTED"
    ACCESS_DENIED = "ACCESS_DENIED"
    GATE_ONLINE = "GATE_ONLINE"
    GATE_OFFLINE = "GATE_OFFLINE"
    MALFORMED_MESSAGE = "MALFORMED_MESSAGE"
    UNKNOWN_FACE = "UNKNOWN_FACE"
    USER_DUPLICATE_CREDENTIAL = "USER_DUPLICATE_CREDENTIAL"
    ADMIN_COMMAND_DONE = "ADMIN_COMMAND_DONE"
    ADMIN_COMMAND_REFUSED = "ADMIN_COMMAND_REFUSED"
    VISITOR_PASS_ISSUED = "VISITOR_PASS_ISSUED"
    VISITOR_PASS_REVOKED = "VISITOR_PASS_REVOKED"
    VISITOR_ENTERED = "VISITOR_ENTERED"
    DEVICE_OFFLINE = "DEVICE_OFFLINE"
    DEVICE_RECOVERED = "DEVICE_RECOVERED"
    NOTIFICATION = "NOTIFICATION"
    GATE_LOG_ACCEPTED = "GATE_LOG_ACCEPTED"


class CredentialType(StrEnum):
    """Kinds of credential a gate can present or a user can hold."""

    CARD = "card"
    QR = "qr"
    FACE = "face"
    PIN = "pin"
    FINGER = "finger"
