"""/visitors: issue, list, show and revoke the caller's unit's passes, all decided by visitor_worker.

The resident always comes from the credentials, never from the request; visitor_worker scopes
every action to that resident's unit.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Response

from schemas.base import IDENTIFIER_PATTERN
from schemas.visitor import ListPasses, PassView, RevokePass, VisitorErrorCode
from visitor_api.auth import Principal, acting
from visitor_api.context import BridgeContext, bridge_context
from visitor_api.errors import BadReply, Refused
from visitor_api.models import PassCreated, PassList, VisitorCreate
from visitor_api.responses import RELAYED, error_responses

log = logging.getLogger(__name__)

router = APIRouter(prefix="/visitors", tags=["visitors"])

Caller = Annotated[Principal, Depends(acting)]
Context = Annotated[BridgeContext, Depends(bridge_context)]
PassId = Annotated[str, Path(pattern=f"^{IDENTIFIER_PATTERN}$", max_length=64, description="the pass id")]
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", pattern=f"^{IDENTIFIER_PATTERN}$", max_length=64,
    description="Retrying with the same key (after a 504, say) gets the first answer again instead of acting twice.")]


@router.post("", status_code=201, response_model=PassCreated, responses=error_responses(400, *RELAYED),
             summary="Issue a visitor pass and its QR code")
async def register_visitor(body: VisitorCreate, caller: Caller, ctx: Context,
                           idempotency_key: IdempotencyKey = None) -> PassCreated:
    """Issues a pass for the caller's unit. With `fcm_token` the QR code goes to the visitor's phone
    (`pushed`); the QR code (PNG as base64, SVG) and its payload come back to share either way unless
    the visitor service withholds them."""
    reply = await ctx.relay.call(caller.user_id, body.to_action(), _request_id(caller, "register", idempotency_key))
    if reply.issued is None:
        raise BadReply("the visitor service reported success but issued no pass")
    log.info("account %s issued visitor pass %s for resident %s (pushed=%s)", caller.account_id,
             reply.issued.pass_id, caller.user_id, reply.pushed)
    return PassCreated(pass_=reply.issued, qr_payload=reply.qr_payload,
                       qr_png_base64=base64.b64encode(reply.qr_png).decode() if reply.qr_png else None,
                       qr_svg=reply.qr_svg, pushed=reply.pushed, push_problem=reply.error)


@router.get("", response_model=PassList, responses=error_responses(*RELAYED), summary="The unit's passes")
async def list_visitors(caller: Caller, ctx: Context,
                        include_inactive: Annotated[bool, Query(description="also revoked, used-up and expired")]
                        = False) -> PassList:
    """The caller's unit's passes, active ones only unless `include_inactive`."""
    return PassList(passes=await _passes(ctx, caller, include_inactive))


@router.get("/{pass_id}", response_model=PassView, responses=error_responses(*RELAYED),
            summary="One pass, with its use count and when and where it was last used")
async def show_visitor(pass_id: PassId, caller: Caller, ctx: Context) -> PassView:
    for view in await _passes(ctx, caller, include_inactive=True):
        if view.pass_id == pass_id:
            return view
    raise Refused(VisitorErrorCode.PASS_NOT_FOUND)


@router.delete("/{pass_id}", response_model=PassView,
               responses={204: {"description": "Revoked (the visitor service returned no pass to show)."},
                          **error_responses(*RELAYED)},
               summary="Revoke a pass")
async def revoke_visitor(pass_id: PassId, caller: Caller, ctx: Context,
                         idempotency_key: IdempotencyKey = None) -> PassView | Response:
    """Revokes one of the unit's passes (the gate refuses it from then on) and shows it as it is now."""
    reply = await ctx.relay.call(caller.user_id, RevokePass(pass_id=pass_id),
                                 _request_id(caller, f"revoke:{pass_id}", idempotency_key))
    log.info("account %s revoked visitor pass %s (resident %s)", caller.account_id, pass_id, caller.user_id)
    return reply.issued if reply.issued is not None else Response(status_code=204)


def _request_id(caller: Principal, what: str, idempotency_key: str | None) -> str | None:
    """A request id fixed by the caller's key: the same account, action and key give the same id, and
    nobody else's key can reach it."""
    if idempotency_key is None:
        return None
    digest = hashlib.sha256(f"{caller.account_id}\n{what}\n{idempotency_key}".encode()).hexdigest()
    return f"idem-{digest[:40]}"


async def _passes(ctx: BridgeContext, caller: Principal, include_inactive: bool) -> list[PassView]:
    reply = await ctx.relay.call(caller.user_id, ListPasses(include_inactive=include_inactive))
    return list(reply.passes)
