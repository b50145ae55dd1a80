"""Which credentials each gate may admit on its own: a pure function of the access snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field

from auth_worker.snapshot import AccessSnapshot
from schemas.codes import CredentialType
from schemas.documents import WeeklySchedule
from schemas.gate import OfflineEntry, OfflinePass

OFFLINE_KINDS = (CredentialType.CARD, CredentialType.PIN)


@dataclass
class AllowList:
    """One gate's offline allow-list: entries by keyed hash, the schedules of the groups they name,
    and the visitor passes valid at the gate."""

    entries: dict[str, OfflineEntry] = field(default_factory=dict)
    groups: dict[str, WeeklySchedule | None] = field(default_factory=dict)
    passes: dict[str, OfflinePass] = field(default_factory=dict)


def allow_lists(snapshot: AccessSnapshot) -> dict[str, AllowList]:
    """Per gate in the store: the active cards and PINs of active users in an access group that
    includes the gate. An inactive gate gets an empty list (it admits nobody offline)."""
    lists = {gate_id: AllowList() for gate_id in snapshot.gates}
    active_gates = {g.id for g in snapshot.gates.values() if g.active}
    for (kind, key), cred in snapshot.credentials.items():
        if kind not in OFFLINE_KINDS or not cred.active:
            continue
        user = snapshot.users.get(cred.user_id)
        if user is None or not user.active:
            continue
        per_gate: dict[str, list[str]] = {}
        for group_id in user.groups:
            group = snapshot.groups.get(group_id)
            if group is None:
                continue
            for gate_id in group.gate_ids:
                if gate_id in active_gates:
                    per_gate.setdefault(gate_id, []).append(group_id)
        for gate_id, group_ids in per_gate.items():
            target = lists[gate_id]
            target.entries[key] = OfflineEntry(kind=kind, key=key, subject_id=user.id,
                                               groups=sorted(set(group_ids)))
            for group_id in group_ids:
                target.groups[group_id] = snapshot.groups[group_id].schedule
    return lists
