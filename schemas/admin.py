"""Admin commands on `admin/command` and replies on `admin/reply/{admin_id}`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from schemas.access import MAX_FACE_JPEG_BYTES, CardId
from schemas.base import Identifier, Message, ShortText, StrictModel
from schemas.codes import EventCode
from schemas.documents import UserKind, WeeklySchedule


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
    | DefineGate | DefineAccessGroup,
    Field(discriminator="action"),
]


class AdminCommand(Message):
    """One admin command; `command_id` makes it idempotent."""

    command_id: Identifier
    admin_id: Identifier
    command: AdminAction


DuplicateKind = Literal["CARD", "FACE", "FINGER"]


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
