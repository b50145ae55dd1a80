"""What every request handler of one bridge app shares."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from accounts.store import AccountStore
from config.settings import Settings
from visitor_api.ratelimit import TokenBuckets
from visitor_api.relay import VisitorRelay
from visitor_api.tokens import TokenIssuer


@dataclass
class BridgeContext:
    settings: Settings
    accounts: AccountStore
    relay: VisitorRelay
    tokens: TokenIssuer
    per_account: TokenBuckets
    login_failures: TokenBuckets
    login_per_ip: TokenBuckets

    @classmethod
    def build(cls, settings: Settings, accounts: AccountStore, relay: VisitorRelay) -> BridgeContext:
        bridge = settings.bridge
        return cls(settings=settings, accounts=accounts, relay=relay, tokens=TokenIssuer.from_settings(settings),
                   per_account=TokenBuckets(bridge.rate_limit_per_minute),
                   login_failures=TokenBuckets(bridge.login_failures_per_minute),
                   login_per_ip=TokenBuckets(bridge.login_attempts_per_minute_per_ip))


def bridge_context(request: Request) -> BridgeContext:
    """The app's context (a FastAPI dependency)."""
    ctx = request.app.state.bridge
    assert isinstance(ctx, BridgeContext)
    return ctx


def client_address(request: Request) -> str:
    # Behind a trusted proxy uvicorn has already put the forwarded address here.
    return request.client.host if request.client is not None else "unknown"
