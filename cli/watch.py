"""Readable lines for the `events/#` stream and gate status."""

from __future__ import annotations

import json

from pydantic import ValidationError

from schemas.events import AccessEvent, AlertEvent, DeviceEvent, EnrollEvent, NotificationEvent, VisitorEvent
from schemas.gate import GateStatus


def format_message(topic: str, payload: bytes) -> str:
    """One line per message; unknown or broken payloads are shown as such, never raised."""
    try:
        if topic.startswith("events/access/"):
            e = AccessEvent.model_validate_json(payload)
            verdict = "GRANTED" if e.granted else "DENIED "
            cred = e.credential_type.value if e.credential_type else "?"
            who = e.subject_id or "-"
            extra = "" if e.granted else f" {e.reason.value}"
            return (f"{_clock(e.ts.isoformat())}  {e.gate_id:<12} {verdict} {who:<10} ({cred})"
                    f"{extra}  {e.latency_ms:.1f} ms")
        if topic.startswith("events/alert/"):
            a = AlertEvent.model_validate_json(payload)
            return f"{_clock(a.ts.isoformat())}  ALERT {a.code.value} gate={a.gate_id or '-'}: {a.detail}"
        if topic.startswith("events/device/"):
            d = DeviceEvent.model_validate_json(payload)
            seen = f" (last seen {_clock(d.last_seen.isoformat())})" if d.last_seen else ""
            return f"{_clock(d.ts.isoformat())}  {d.gate_id:<12} {d.state.value.upper()}{seen}"
        if topic.startswith("events/visitor/"):
            v = VisitorEvent.model_validate_json(payload)
            at = f" at {v.gate_id}" if v.gate_id else ""
            return (f"{_clock(v.ts.isoformat())}  VISITOR {v.code.value} pass={v.pass_id} resident={v.resident_id}"
                    f"{at} uses {v.uses}/{v.max_uses}")
        if topic.startswith("events/enroll/"):
            en = EnrollEvent.model_validate_json(payload)
            outcome = "done" if en.ok else en.code.value
            dup = f" {en.sub_code} held by {en.matched_user_id}" if en.matched_user_id else ""
            return f"{_clock(en.ts.isoformat())}  ADMIN {en.admin_id} {en.action} {en.target or '-'}: {outcome}{dup}"
        if topic.startswith("events/notify/"):
            n = NotificationEvent.model_validate_json(payload)
            return f"{_clock(n.ts.isoformat())}  NOTIFY {n.recipient_id}: {n.title} - {n.body}"
        if topic.startswith("gates/") and topic.endswith("/status"):
            s = GateStatus.model_validate_json(payload)
            return f"{_clock(s.ts.isoformat())}  {s.gate_id:<12} {s.state.value.upper()}"
    except ValidationError:
        return f"{topic}: <unreadable {len(payload)}-byte message>"
    try:
        return f"{topic}: {json.dumps(json.loads(payload))[:300]}"
    except ValueError:
        return f"{topic}: <{len(payload)} bytes>"


def _clock(iso: str) -> str:
    # 2026-11-23T10:21:33.123456+00:00 -> 10:21:33.123
    return iso[11:23]
