import base64
import json

import pytest

from schemas.access import (
    MAX_FACE_JPEG_BYTES,
    AccessRequest,
    AccessResponse,
    CardCredential,
    FaceCredential,
    PinCredential,
    QrCredential,
)
from schemas.codec import decode, encode
from schemas.codes import ReasonCode
from schemas.errors import InvalidPayload, PayloadTooLarge
from schemas.topics import MAX_ACCESS_REQUEST_BYTES


def _request_dict(**credential: object) -> dict[str, object]:
    return {"v": 1, "ts": "2026-11-23T10:00:00Z", "msg_id": "m1", "request_id": "r1",
            "gate_id": "gate-1", "credential": credential or {"type": "card", "acc_id": "CARD-1"}}


def test_card_request_round_trips() -> None:
    req = AccessRequest(request_id="r1", gate_id="gate-1", credential=CardCredential(acc_id="CARD-1"))
    back = decode(AccessRequest, encode(req), MAX_ACCESS_REQUEST_BYTES)
    assert back == req
    assert isinstance(back.credential, CardCredential)


@pytest.mark.parametrize("credential, kind", [
    ({"type": "card", "acc_id": "A1"}, CardCredential),
    ({"type": "qr", "payload": "PASS.abc"}, QrCredential),
    ({"type": "pin", "pin": "1234", "unit": "1203"}, PinCredential),
    ({"type": "face", "embedding": [0.0] * 512, "model_id": "w600k_mbf"}, FaceCredential),
    ({"type": "face", "jpeg": base64.b64encode(b"\xff\xd8jpeg").decode()}, FaceCredential),
])
def test_discriminated_credentials(credential: dict[str, object], kind: type) -> None:
    req = decode(AccessRequest, json.dumps(_request_dict(**credential)).encode())
    assert isinstance(req.credential, kind)


@pytest.mark.parametrize("mutate, where", [
    (lambda d: d.update(extra=1), "extra"),
    (lambda d: d.pop("request_id"), "request_id"),
    (lambda d: d.update(gate_id=17), "gate_id"),
    (lambda d: d.update(gate_id="gate/+/#"), "gate_id"),
    (lambda d: d.update(v=2), "v"),
    (lambda d: d.update(ts="2026-11-23T10:00:00"), "ts"),  # naive timestamps are ambiguous
    (lambda d: d.update(credential={"type": "iris", "x": 1}), "credential"),
    (lambda d: d.update(credential={"type": "card", "acc_id": ""}), "credential"),
    (lambda d: d.update(credential={"type": "card", "acc_id": "A" * 65}), "credential"),
    (lambda d: d.update(credential={"type": "pin", "pin": "12"}), "credential"),
    (lambda d: d.update(credential={"type": "face"}), "credential"),
    (lambda d: d.update(credential={"type": "face", "embedding": [0.0] * 512}), "credential"),
    (lambda d: d.update(credential={"type": "face", "embedding": [0.0] * 10, "model_id": "m"}), "credential"),
])
def test_bad_requests_are_typed_errors(mutate, where: str) -> None:  # type: ignore[no-untyped-def]
    data = _request_dict()
    mutate(data)
    with pytest.raises(InvalidPayload) as err:
        decode(AccessRequest, json.dumps(data).encode())
    assert err.value.model == "AccessRequest"
    assert any(e.startswith(where) for e in err.value.errors), err.value.errors


def test_garbage_is_invalid_payload() -> None:
    with pytest.raises(InvalidPayload):
        decode(AccessRequest, b"\x00\xff\xfe not json")


def test_oversize_rejected_before_parsing() -> None:
    with pytest.raises(PayloadTooLarge) as err:
        decode(AccessRequest, b"{" + b" " * MAX_ACCESS_REQUEST_BYTES, MAX_ACCESS_REQUEST_BYTES)
    assert err.value.limit == MAX_ACCESS_REQUEST_BYTES


def test_face_jpeg_limit() -> None:
    too_big = base64.b64encode(b"\0" * (MAX_FACE_JPEG_BYTES + 1)).decode()
    with pytest.raises(InvalidPayload):
        decode(AccessRequest, json.dumps(_request_dict(type="face", jpeg=too_big)).encode(),
               MAX_ACCESS_REQUEST_BYTES)


def test_errors_and_repr_never_show_card_ids() -> None:
    secret = "SECRET-CARD-42"
    cred = CardCredential(acc_id=secret)
    assert secret not in repr(cred) and secret not in str(cred)
    req = AccessRequest(request_id="r1", gate_id="g1", credential=cred)
    assert secret not in repr(req)
    data = _request_dict(type="card", acc_id=secret)
    data["gate_id"] = 5
    with pytest.raises(InvalidPayload) as err:
        decode(AccessRequest, json.dumps(data).encode())
    assert secret not in str(err.value)


def test_response_must_be_consistent() -> None:
    with pytest.raises(ValueError):
        AccessResponse(request_id="r", gate_id="g", granted=True, reason=ReasonCode.UNKNOWN_CREDENTIAL,
                       latency_ms=1.0)
    with pytest.raises(ValueError):
        AccessResponse(request_id="r", gate_id="g", granted=False, reason=ReasonCode.GRANTED, latency_ms=1.0)
    ok = AccessResponse(request_id="r", gate_id="g", granted=False, reason=ReasonCode.USER_INACTIVE,
                        latency_ms=0.2)
    assert decode(AccessResponse, encode(ok)) == ok


def test_salvage_ids_reads_only_valid_ids() -> None:
    from schemas.codec import salvage_ids

    assert salvage_ids(b'{"request_id": "r-1", "gate_id": 5}', "request_id", "gate_id") == {"request_id": "r-1"}
    assert salvage_ids(b'{"request_id": "r\\n"}', "request_id") == {}  # no trailing newline sneaks by
    assert salvage_ids(b'{"request_id": "a/#"}', "request_id") == {}
    assert salvage_ids(b"[1, 2]", "request_id") == {}
    assert salvage_ids(b"\xff garbage", "request_id") == {}
    assert salvage_ids(b"[" * 100_000, "request_id") == {}  # too deep to parse: nothing, no crash
