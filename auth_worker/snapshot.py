"""What a decision needs, held in memory: the store stays off the hot path."""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.codes import CredentialType
from schemas.documents import AccessGroup, Gate, StoredCredential, User
from store.repository import Store


@dataclass(frozen=True)
class AccessSnapshot:
    """An immutable view of users, credentials, gates and groups; swapped whole on reload."""

    credentials: dict[tuple[CredentialType, str], StoredCredential] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    gates: dict[str, Gate] = field(default_factory=dict)
    groups: dict[str, AccessGroup] = field(default_factory=dict)

    @classmethod
    def load(cls, store: Store) -> AccessSnapshot:
        """Read everything a decision needs from the store."""
        return cls(
            credentials={(c.kind, c.lookup_key): c for c in store.iter_credentials()},
            users={u.id: u for u in store.iter_users()},
            gates={g.id: g for g in store.iter_gates()},
            groups={g.id: g for g in store.iter_access_groups()},
        )
