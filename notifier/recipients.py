"""Who gets told, and at which addresses: admins from the settings, residents from the store."""

from __future__ import annotations

from collections.abc import Sequence

from config.settings import NotifyRecipient
from notifier.base import Notification
from schemas.documents import User


def for_admin(admin: NotifyRecipient, title: str, body: str, data: dict[str, str] | None = None) -> Notification:
    """A notification for one configured admin, with every address they have."""
    return Notification(recipient_id=admin.id, title=title, body=body, data=data or {}, email=admin.email,
                        phone=admin.phone,
                        fcm_token=admin.fcm_token.get_secret_value() if admin.fcm_token else None)


def for_admins(admins: Sequence[NotifyRecipient], title: str, body: str,
               data: dict[str, str] | None = None) -> list[Notification]:
    return [for_admin(a, title, body, data) for a in admins]


def for_user(user: User, title: str, body: str, data: dict[str, str] | None = None) -> Notification:
    """A notification for a resident. Users carry a phone today; an email and the resident app's FCM
    token are read when the user document has them (proposed `User.email` / `User.fcm_token`)."""
    email = getattr(user, "email", None)
    token = getattr(user, "fcm_token", None)
    return Notification(recipient_id=user.id, title=title, body=body, data=data or {}, phone=user.phone,
                        email=email if isinstance(email, str) else None,
                        fcm_token=token if isinstance(token, str) else None)
