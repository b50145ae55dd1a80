"""Admin commands on `admin/command` and replies on `admin/reply/{admin_id}`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from schemas.access import MAX_FACE_JPEG_BYTES, CardId
from schemas.base import Identifier, Message, ShortText, StrictModel
from schemas.codes import EventCode
from schemas.documents import UserKind, WeeklySchedule

Pin = Annotated[str, StringConstraints(pattern=r"^[0-9]{4,12}$")]


class CreateUser(StrictModel):
    action: Literal["create_user"] = "create_user"
    user_id: Identifier
    name: ShortText
    kind: UserKind = UserKind.RESIDENT
    building: ShortText | None = None
    unit: ShortText | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 -]{4,20}$")] | None = None
    groups: list[Identifier] = []


class UpdateUser(StrictModel):
    action: Literal["update_user"] = "update_user"
    user_id: Identifier
    name: ShortText | None = None
    building: ShortText | None = None
    unit: ShortText | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 -]{4,20}$")] | None = None
    groups: list[Identifier] | None = None


class DeactivateUser(StrictModel):
    action: Literal["deactivate_user"] = "deactivate_user"
    user_id: Identifier


class DeleteUser(StrictModel):
    action: Literal["delete_user"] = "delete_user"
    user_id: Identifier


class AddCard(StrictModel):
    action: Literal["add_card"] = "add_card"
    user_id: Identifier
    acc_id: CardId

    def __repr__(self) -> str:
        return f"AddCard(user_id={self.user_id!r}, acc_id=<redacted>)"


class RemoveCard(StrictModel):
    action: Literal["remove_card"] = "remove_card"
    user_id: Identifier
    acc_id: CardId

    def __repr__(self) -> str:
        return f"RemoveCard(user_id={self.user_id!r}, acc_id=<redacted>)"


class AddFace(StrictModel):
    action: Literal["add_face"] = "add_face"
    user_id: Identifier
    photo: Annotated[bytes, Field(min_length=1, max_length=MAX_FACE_JPEG_BYTES)]


class AddFinger(StrictModel):
    action: Literal["add_finger"] = "add_finger"
    user_id: Identifier
    sample: Annotated[bytes, Field(min_length=1, max_length=256 * 1024)]


class SetPin(StrictModel):
    """Set (or replace) the user's keypad PIN; with their unit code it is unique on the site."""

    action: Literal["set_pin"] = "set_pin"
    user_id: Identifier
    pin: Pin

    def __repr__(self) -> str:
        return f"SetPin(user_id={self.user_id!r}, pin=<redacted>)"

    __str__ = __repr__


class ListUsers(StrictModel):
    """Query users: by building / unit (exact), text (id or name prefix, case-insensitive)."""

    action: Literal["list_users"] = "list_users"
    building: ShortText | None = None
    unit: ShortText | None = None
    text: Annotated[str, StringConstraints(max_length=100)] | None = None
    active_only: bool = False
    limit: int = Field(default=100, ge=1, le=500)
    offset: int = Field(default=0, ge=0)


class QueryAudit(StrictModel):
    """Query the audit trail by target user, event code and time range, newest first."""

    action: Literal["query_audit"] = "query_audit"
    target: Identifier | None = None
    code: EventCode | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    limit: int = Field(default=100, ge=1, le=500)


class ImportResidents(StrictModel):
    """Bulk create residents (and their cards) from CSV. All rows are checked first; if any row
    fails, nothing is applied and the reply lists every row's outcome.

    Columns (header required): user_id,name,building,unit,phone,groups,card_id
    (groups separated by `;`; phone, groups and card_id may be empty).
    """

    action: Literal["import_residents"] = "import_residents"
    csv: Annotated[str, StringConstraints(min_length=1, max_length=1024 * 1024)]
    dry_run: bool = False

    def __repr__(self) -> str:
        return f"ImportResidents(bytes={len(self.csv)}, dry_run={self.dry_run})"


class DefineGate(StrictModel):
    action: Literal["define_gate"] = "define_gate"
    gate_id: Identifier
    name: ShortText
    building: ShortText | None = None


class DefineAccessGroup(StrictModel):
    action: Literal["define_access_group"] = "define_access_group"
    group_id: Identifier
    name: ShortText
    gate_ids: list[Identifier]
    schedule: WeeklySchedule | None = None


AdminAction = Annotated[
    CreateUser | UpdateUser | DeactivateUser | DeleteUser | AddCard | RemoveCard | AddFace | AddFinger
    | SetPin | DefineGate | DefineAccessGroup | ListUsers | QueryAudit | ImportResidents,
    Field(discriminator="action"),
]


class AdminCommand(Message):
    """One admin command; `command_id` makes it idempotent."""

    command_id: Identifier
    admin_id: Identifier
    command: AdminAction


# Read-only actions: answered, never audited or replayed from the audit trail.
QUERY_ACTIONS = frozenset({"list_users", "query_audit"})

DuplicateKind = Literal["CARD", "FACE", "FINGER"]


class UserView(StrictModel):
    """A user as the console lists them: no credential values, only what they hold."""

    id: Identifier
    name: ShortText
    kind: UserKind
    building: ShortText | None = None
    unit: ShortText | None = None
    phone: ShortText | None = None
    groups: list[Identifier] = []
    active: bool
    cards: int = 0
    faces: int = 0
    fingers: int = 0
    has_pin: bool = False


class AuditView(StrictModel):
    id: Identifier
    ts: AwareDatetime
    actor: Identifier
    action: ShortText
    target: Identifier | None = None
    ok: bool
    code: ShortText
    sub_code: ShortText | None = None
    matched_user_id: Identifier | None = None
    detail: Annotated[str, StringConstraints(max_length=1000)] | None = None


ImportOutcome = Literal["OK", "INVALID", "USER_EXISTS", "DUPLICATE_CARD", "DUPLICATE_IN_FILE", "UNKNOWN_GROUP"]


class ImportRow(StrictModel):
    """One CSV row's outcome (row 1 is the first line after the header)."""

    row: int = Field(ge=1)
    user_id: ShortText | None = None
    outcome: ImportOutcome
    error: Annotated[str, StringConstraints(max_length=500)] | None = None
    matched_user_id: Identifier | None = None


class AdminReply(Message):
    """The outcome of one admin command; on a duplicate, who already holds the credential."""

    command_id: Identifier
    ok: bool
    code: EventCode | None = None
    error: Annotated[str, StringConstraints(max_length=1000)] | None = None
    error_ko: Annotated[str, StringConstraints(max_length=1000)] | None = None
    subject_id: Identifier | None = None
    sub_code: DuplicateKind | None = None
    matched_user_id: Identifier | None = None
    matched_user_name: ShortText | None = None
    # Query and import results.
    users: list[UserView] = []
    total: int | None = None
    audit: list[AuditView] = []
    import_rows: list[ImportRow] = []
