"""The one place that knows topic names: build them, parse them, size-limit them."""

from __future__ import annotations

from schemas.base import is_identifier
from schemas.errors import TopicError

ACCESS_REQUEST_FILTER = "access/request/+"
SHARED_GROUP = "auth"
EVENTS_FILTER = "events/#"
GATE_STATUS_FILTER = "gates/+/status"
GATE_LOGS_FILTER = "gates/+/logs"
GATE_HEARTBEAT_FILTER = "gates/+/heartbeat"

# Per-topic payload limits. A face JPEG (2 MiB) travels base64-encoded in JSON.
MAX_ACCESS_REQUEST_BYTES = 3 * 1024 * 1024
MAX_DEFAULT_BYTES = 64 * 1024
MAX_ADMIN_COMMAND_BYTES = 3 * 1024 * 1024
MAX_GATE_LOG_BYTES = 1024 * 1024
MAX_ADMIN_REPLY_BYTES = 2 * 1024 * 1024


def _checked(gate_id: str) -> str:
    if not is_identifier(gate_id):
        raise TopicError(f"not a valid id: {gate_id[:80]!r}")
    return gate_id


def access_request(gate_id: str) -> str:
    return f"access/request/{_checked(gate_id)}"


def access_response(gate_id: str) -> str:
    return f"access/response/{_checked(gate_id)}"


def gate_status(gate_id: str) -> str:
    return f"gates/{_checked(gate_id)}/status"


def gate_sync(gate_id: str) -> str:
    return f"gates/{_checked(gate_id)}/sync"


def gate_logs(gate_id: str) -> str:
    return f"gates/{_checked(gate_id)}/logs"


def gate_logs_ack(gate_id: str) -> str:
    """Server -> gate: which uploaded offline decisions are stored (the gate may drop them)."""
    return f"gates/{_checked(gate_id)}/logs/ack"


def gate_ping(gate_id: str) -> str:
    """Server -> gate liveness probe; the gate answers on gate_heartbeat."""
    return f"gates/{_checked(gate_id)}/ping"


def gate_heartbeat(gate_id: str) -> str:
    return f"gates/{_checked(gate_id)}/heartbeat"


ADMIN_COMMAND = "admin/command"
VISITOR_REGISTER = "visitor/register"
VISITOR_REPLY_FILTER = "visitor/reply/+"
# A reply carries the QR code twice (PNG <= 64 KiB as base64, SVG <= 64 KiB) and pass lists.
MAX_VISITOR_REPLY_BYTES = 512 * 1024


def admin_reply(admin_id: str) -> str:
    return f"admin/reply/{_checked(admin_id)}"


def visitor_reply(request_id: str) -> str:
    return f"visitor/reply/{_checked(request_id)}"


def access_event(gate_id: str) -> str:
    return f"events/access/{_checked(gate_id)}"


def enroll_event(user_id: str) -> str:
    return f"events/enroll/{_checked(user_id)}"


def device_event(gate_id: str) -> str:
    return f"events/device/{_checked(gate_id)}"


def alert_event(kind: str) -> str:
    return f"events/alert/{_checked(kind)}"


def notify_event(recipient_id: str) -> str:
    """The local notifier channel: one topic per recipient (admin or resident)."""
    return f"events/notify/{_checked(recipient_id)}"


def visitor_event(pass_id: str) -> str:
    return f"events/visitor/{_checked(pass_id)}"


def shared(topic_filter: str, group: str = SHARED_GROUP) -> str:
    """The MQTT 5 shared-subscription form of a filter, so N workers split the load."""
    return f"$share/{group}/{topic_filter}"


def unshared(topic_filter: str) -> str:
    """The plain filter behind a `$share/{group}/...` subscription."""
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        if len(parts) != 3 or not parts[2]:
            raise TopicError(f"bad shared subscription: {topic_filter!r}")
        return parts[2]
    return topic_filter


def gate_of_access_request(topic: str) -> str:
    """The gate id in `access/request/{gate_id}`; raises TopicError otherwise."""
    return _gate_in(topic, "access", "request")


def gate_of_access_response(topic: str) -> str:
    return _gate_in(topic, "access", "response")


def gate_of_status(topic: str) -> str:
    return _gate_under(topic, "status")


def gate_of_logs(topic: str) -> str:
    return _gate_under(topic, "logs")


def gate_of_heartbeat(topic: str) -> str:
    return _gate_under(topic, "heartbeat")


def _gate_under(topic: str, leaf: str) -> str:
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != "gates" or parts[2] != leaf:
        raise TopicError(f"not a gates/+/{leaf} topic: {topic[:80]!r}")
    return _checked(parts[1])


def _gate_in(topic: str, first: str, second: str) -> str:
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != first or parts[1] != second:
        raise TopicError(f"not an {first}/{second} topic: {topic[:80]!r}")
    return _checked(parts[2])


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching (`+`, `#`), shared prefixes stripped."""
    f_parts = unshared(topic_filter).split("/")
    t_parts = topic.split("/")
    for i, part in enumerate(f_parts):
        if part == "#":
            return True
        if i >= len(t_parts):
            return False
        if part != "+" and part != t_parts[i]:
            return False
    return len(f_parts) == len(t_parts)
