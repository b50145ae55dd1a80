"""Read-only admin actions: list users, query the audit trail. Never audited, never replayed."""

from __future__ import annotations

from schemas.admin import AdminReply, AuditView, ListUsers, QueryAudit, UserView
from schemas.codes import EventCode
from store.repository import Store


def answer(store: Store, command_id: str, action: ListUsers | QueryAudit) -> AdminReply:
    """The reply to one query (blocking)."""
    if isinstance(action, ListUsers):
        users, total = store.query_users(building=action.building, unit=action.unit, text=action.text,
                                         active_only=action.active_only, limit=action.limit, offset=action.offset)
        counts = store.credential_counts([u.id for u in users])
        views = [UserView(id=u.id, name=u.name, kind=u.kind, building=u.building, unit=u.unit, phone=u.phone,
                          groups=u.groups, active=u.active, cards=counts[u.id]["card"],
                          faces=counts[u.id]["face"], fingers=counts[u.id]["finger"],
                          has_pin=counts[u.id]["pin"] > 0) for u in users]
        return AdminReply(command_id=command_id, ok=True, code=EventCode.ADMIN_COMMAND_DONE, users=views, total=total)
    records = store.query_audit(target=action.target, code=action.code.value if action.code else None,
                                since=action.since, until=action.until, limit=action.limit)
    views_a = [AuditView(id=r.id, ts=r.ts, actor=r.actor, action=r.action, target=r.target, ok=r.ok, code=r.code,
                         sub_code=r.sub_code, matched_user_id=r.matched_user_id, detail=r.detail) for r in records]
    return AdminReply(command_id=command_id, ok=True, code=EventCode.ADMIN_COMMAND_DONE, audit=views_a,
                      total=len(views_a))
