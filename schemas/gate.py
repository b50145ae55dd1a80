"""Gate status, offline-cache sync and offline decision logs."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, Field, StringConstraints

from schemas.base import Identifier, Message, StrictModel
from schemas.codes import CredentialType, ReasonCode


class GateState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class GateStatus(Message):
    """Retained on `gates/{gate_id}/status`; the gate's last will publishes `offline`."""

    gate_id: Identifier
    state: GateState
    firmware: Annotated[str, StringConstraints(max_length=64)] = "passage-edge"
    cache_version: int = Field(default=0, ge=0)


class GateSync(Message):
    """Offline allow-list pushed to a gate: a full snapshot or a delta on top of `base_version`."""

    gate_id: Identifier
    version: int = Field(ge=0)
    snapshot: bool
    base_version: int | None = None
    card_hashes_added: list[Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]] = []
    card_hashes_removed: list[Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]] = []
    passes: list[Annotated[str, StringConstraints(max_length=2048)]] = []


class OfflineDecision(StrictModel):
    """One decision a gate took on its own while the link was down."""

    event_id: Identifier
    request_id: Identifier
    ts: AwareDatetime
    credential_type: CredentialType
    granted: bool
    reason: ReasonCode
    subject_id: Identifier | None = None


class GateLogBatch(Message):
    """A batch of offline decisions uploaded on `gates/{gate_id}/logs`."""

    gate_id: Identifier
    decisions: list[OfflineDecision] = Field(max_length=1000)


class GatePing(Message):
    """Server -> gate on `gates/{gate_id}/ping`: answer with a heartbeat carrying `ping_id`."""

    gate_id: Identifier
    ping_id: Identifier


class GateHeartbeat(Message):
    """Gate -> server on `gates/{gate_id}/heartbeat`, answering a ping (or unsolicited)."""

    gate_id: Identifier
    ping_id: Identifier | None = None
    cache_version: int = Field(default=0, ge=0)
    queued_offline: int = Field(default=0, ge=0)
