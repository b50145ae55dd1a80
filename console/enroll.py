"""Adding a resident from the console: create, then card, then face, all or nothing.

A refusal after the resident was created rolls the resident back automatically (DeleteUser),
rather than leaving the choice to the admin. The form is one act of enrollment for the admin:
a resident without the credential they were enrolled with is a state nobody asked for, and after
a duplicate refusal it is usually the same person enrolled twice, so keeping the record would
leave a ghost resident that an admin has to notice and clean up. The attempt is not lost: the
worker's audit trail keeps every step, the refusal included. Only when the rollback itself fails
is the admin told exactly what is left, with a button to delete it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from admin_worker.client import AdminClientError, AdminTimeout
from schemas.admin import AddCard, AddFace, AdminAction, AdminReply, CreateUser, DeleteUser
from schemas.codes import EventCode

Send = Callable[[AdminAction], Awaitable[AdminReply]]
StepState = Literal["done", "refused", "duplicate", "error", "rolled_back"]

_STEP_NAMES = {"create_user": "Create resident", "add_card": "Add card", "add_face": "Add face",
               "delete_user": "Roll back (delete resident)"}


@dataclass(frozen=True)
class Step:
    """One command of the enrollment and how it went, as the result page shows it."""

    action: str
    state: StepState
    message: str = ""
    message_ko: str = ""

    @property
    def title(self) -> str:
        return _STEP_NAMES.get(self.action, self.action)


@dataclass(frozen=True)
class Duplicate:
    """A credential refused because another resident holds it."""

    kind: str  # CARD / FACE / FINGER
    user_id: str
    user_name: str | None
    message: str  # "Duplicate Face (U123 — Kim Min-su)"
    message_ko: str  # "중복된 얼굴 (U123 — Kim Min-su)"


@dataclass
class EnrollOutcome:
    user_id: str
    steps: list[Step] = field(default_factory=list)
    duplicate: Duplicate | None = None
    created: bool = False  # this submission created the resident
    left_behind: bool = False  # created, refused later, and the rollback failed: still there

    @property
    def ok(self) -> bool:
        return all(s.state == "done" for s in self.steps)


def with_name(text: str, name: str | None) -> str:
    """'Duplicate Face (U123)' -> 'Duplicate Face (U123 — Kim Min-su)'."""
    if not name:
        return text
    if text.endswith(")"):
        return f"{text[:-1]} — {name})"
    return f"{text} ({name})"


def describe_duplicate(reply: AdminReply) -> Duplicate:
    kind = reply.sub_code or "?"
    user_id = reply.matched_user_id or "?"
    english = reply.error or f"Duplicate {kind} ({user_id})"
    korean = reply.error_ko or ""
    return Duplicate(kind=kind, user_id=user_id, user_name=reply.matched_user_name,
                     message=with_name(english, reply.matched_user_name),
                     message_ko=with_name(korean, reply.matched_user_name) if korean else "")


async def enroll_resident(send: Send, create: CreateUser, card: AddCard | None,
                          face: AddFace | None) -> EnrollOutcome:
    """Run the enrollment; never raises for a refusal, a timeout or an unreachable broker."""
    outcome = EnrollOutcome(user_id=create.user_id)
    for action in [a for a in (create, card, face) if a is not None]:
        step, reply = await _attempt(send, action)
        outcome.steps.append(step)
        if step.state == "done":
            if isinstance(action, CreateUser):
                outcome.created = True
            continue
        if reply is not None and reply.code is EventCode.USER_DUPLICATE_CREDENTIAL:
            outcome.duplicate = describe_duplicate(reply)
        if outcome.created:
            await _roll_back(send, outcome)
        break
    return outcome


async def _roll_back(send: Send, outcome: EnrollOutcome) -> None:
    step, _ = await _attempt(send, DeleteUser(user_id=outcome.user_id))
    if step.state == "done":
        outcome.steps.append(Step("delete_user", "rolled_back",
                                  f"Resident {outcome.user_id} was deleted again: nothing of this attempt is kept."))
    else:
        outcome.left_behind = True
        outcome.steps.append(Step("delete_user", "error",
                                  f"Could not roll back ({step.message}). Resident {outcome.user_id} still "
                                  "exists with the credentials added above; delete it below."))


async def _attempt(send: Send, action: AdminAction) -> tuple[Step, AdminReply | None]:
    try:
        reply = await send(action)
    except AdminTimeout as exc:
        # The worker may still apply it later: say so rather than claim it failed.
        return Step(action.action, "error", f"No answer from the admin worker ({exc}); it may still be "
                                            "applied: check the residents list."), None
    except AdminClientError as exc:
        return Step(action.action, "error", f"Message bus unreachable: {exc}"), None
    if reply.ok:
        return Step(action.action, "done"), reply
    if reply.code is EventCode.USER_DUPLICATE_CREDENTIAL:
        dup = describe_duplicate(reply)
        return Step(action.action, "duplicate", dup.message, dup.message_ko), reply
    return Step(action.action, "refused", reply.error or "refused", reply.error_ko or ""), reply
