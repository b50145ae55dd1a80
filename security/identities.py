"""Who may connect to a site's broker: gates and worker processes, each with one role."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from schemas.base import Identifier
from security.files import write_file


class Role(StrEnum):
    """What an identity does on the bus; the topic ACL grants by role (security/acl.py)."""

    GATE = "gate"
    AUTH = "auth"
    ADMIN = "admin"
    VISITOR = "visitor"
    SYNC = "sync"
    MONITOR = "monitor"
    CONSOLE = "console"
    BRIDGE = "bridge"
    OPERATOR = "operator"


class IdentityError(ValueError):
    """An identity list that cannot be used: a name taken twice, or a file that does not parse."""


class Identity(BaseModel):
    """One client: its name is the MQTT username (and the certificate CN)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Identifier
    role: Role


class SiteIdentities(BaseModel):
    """The identities of one site, kept as JSON next to its CA (`passage certs`)."""

    model_config = ConfigDict(extra="forbid")

    site: Identifier
    identities: list[Identity] = []

    @model_validator(mode="after")
    def _names_unique(self) -> SiteIdentities:
        names = [i.name for i in self.identities]
        if len(names) != len(set(names)):
            raise ValueError("an identity name is listed twice")
        return self

    def get(self, name: str) -> Identity | None:
        return next((i for i in self.identities if i.name == name), None)

    def with_identity(self, identity: Identity) -> SiteIdentities:
        """A copy with `identity` added; the same name with another role is refused, since a gate
        named like a worker would gain that worker's rights (or the other way round)."""
        existing = self.get(identity.name)
        if existing is not None:
            if existing.role != identity.role:
                raise IdentityError(
                    f"{identity.name!r} is already a {existing.role.value}, not a {identity.role.value}")
            return self
        return SiteIdentities(site=self.site, identities=[*self.identities, identity])

    def without(self, name: str) -> SiteIdentities:
        """A copy without `name` (the same list if it was not there)."""
        return SiteIdentities(site=self.site, identities=[i for i in self.identities if i.name != name])

    def by_role(self, role: Role) -> list[Identity]:
        return [i for i in self.identities if i.role is role]

    @classmethod
    def load(cls, path: Path) -> SiteIdentities:
        try:
            return cls.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            raise IdentityError(f"{path}: not a valid identity list: {exc.error_count()} error(s)") from exc

    def save(self, path: Path) -> None:
        write_file(path, self.model_dump_json(indent=2).encode() + b"\n", mode=0o644, overwrite=True)
