"""Gate status, offline-cache sync, offline decision logs and liveness pings."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from schemas.base import Identifier, Message, StrictModel
from schemas.codes import CredentialType, ReasonCode
from schemas.documents import KeyHash, WeeklySchedule

# A gate's sync message is one MQTT packet: Mosquitto caps packets at 4 MiB (broker/mosquitto.py),
# so the server refuses to build a larger one (~146 bytes per credential: about 28k per gate; 10k
# is ~1.4 MiB). Past that, snapshots would need chunking.
MAX_GATE_SYNC_BYTES = 4 * 1024 * 1024 - 64 * 1024
MAX_SYNC_ENTRIES = 100_000


class GateState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class GateStatus(Message):
    """Retained on `gates/{gate_id}/status`; the gate's last will publishes `offline`."""

    gate_id: Identifier
    state: GateState
    firmware: Annotated[str, StringConstraints(max_length=64)] = "passage-edge"
    cache_version: int = Field(default=0, ge=0)


class OfflineEntry(StrictModel):
    """One credential a gate may admit offline: the keyed hash, its holder and the holder's groups
    for this gate (their schedules travel once per message in `GateSync.groups`)."""

    kind: Literal[CredentialType.CARD, CredentialType.PIN]
    key: KeyHash
    subject_id: Identifier
    groups: list[Identifier] = Field(min_length=1, max_length=64)


class OfflinePass(StrictModel):
    """A visitor pass valid at this gate; the token itself is verified by signature at the gate."""

    pass_id: Identifier
    valid_until: AwareDatetime
    uses_left: int = Field(ge=0)


class GateSync(Message):
    """Offline allow-list pushed (retained) on `gates/{gate_id}/sync`.

    Versions only grow within a `lineage` (one run of the sync service). A snapshot replaces the
    whole cache. A delta holds every credential touched since the snapshot at `base_version`
    (cumulative), so it applies to any cache of the same lineage at a version in
    [base_version, version); anything else is refused and the gate waits for a snapshot.
    `groups` is always complete: the schedule of every group the entries name (None = always).
    """

    gate_id: Identifier
    lineage: Identifier
    version: int = Field(ge=1)
    snapshot: bool
    base_version: int | None = Field(default=None, ge=1)
    key_id: Identifier
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    groups: dict[Identifier, WeeklySchedule | None] = {}
    entries: list[OfflineEntry] = Field(default=[], max_length=MAX_SYNC_ENTRIES)
    removed: list[KeyHash] = Field(default=[], max_length=MAX_SYNC_ENTRIES)
    passes: list[OfflinePass] = Field(default=[], max_length=10_000)
    removed_passes: list[Identifier] = Field(default=[], max_length=10_000)
    # Raw Ed25519 public key of the site's pass signer, hex (not a secret).
    pass_public_key: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.snapshot and (self.base_version is not None or self.removed or self.removed_passes):
            raise ValueError("a snapshot has no base_version and removes nothing")
        if not self.snapshot and (self.base_version is None or self.base_version >= self.version):
            raise ValueError("a delta needs base_version < version")
        unknown = {g for e in self.entries for g in e.groups} - set(self.groups)
        if unknown:
            raise ValueError(f"{len(unknown)} group(s) named by entries have no schedule")
        return self


class OfflineDecision(StrictModel):
    """One decision a gate took on its own while the link was down."""

    event_id: Identifier
    request_id: Identifier
    ts: AwareDatetime
    credential_type: CredentialType
    granted: bool
    reason: ReasonCode
    subject_id: Identifier | None = None
    latency_ms: float = Field(default=0.0, ge=0.0)


class GateLogBatch(Message):
    """A batch of offline decisions uploaded on `gates/{gate_id}/logs`."""

    gate_id: Identifier
    decisions: list[OfflineDecision] = Field(max_length=1000)


class GateLogAck(Message):
    """Server -> gate on `gates/{gate_id}/logs/ack`: these uploaded decisions are stored (for good);
    the gate may delete them. `batch_id` is the acknowledged batch's `msg_id`."""

    gate_id: Identifier
    batch_id: Identifier
    event_ids: list[Identifier] = Field(max_length=1000)


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
