"""Residents' access tokens: HS256 JWTs naming the account (`sub`) and the resident (`uid`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from config.key_files import secret_text
from config.settings import Settings
from schemas.base import is_identifier, new_id
from visitor_api.errors import Unauthorized

ALGORITHM = "HS256"
# Issuer and audience keep a token minted for another Passage service from being accepted here.
ISSUER = "passage"
AUDIENCE = "passage-visitor-api"
MAX_TOKEN_CHARS = 4096
_REQUIRED = ["sub", "uid", "exp", "iat", "jti", "iss", "aud"]


@dataclass(frozen=True, slots=True)
class TokenClaims:
    account_id: str
    user_id: str
    expires_at: int
    token_id: str


class TokenIssuer:
    """Signs and checks the bridge's JWTs with one site secret."""

    def __init__(self, secret: str, ttl_s: int) -> None:
        self._key = secret.encode()
        self.ttl_s = ttl_s

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenIssuer:
        """The configured secret, else one generated once into data_dir/keys/bridge_jwt.key."""
        bridge = settings.bridge
        if bridge.jwt_secret is not None:
            secret = bridge.jwt_secret.get_secret_value()
        else:
            secret = secret_text(settings.data_dir / "keys" / "bridge_jwt.key")
        return cls(secret, bridge.jwt_ttl_s)

    def issue(self, account_id: str, user_id: str) -> str:
        now = int(time.time())
        claims = {"sub": account_id, "uid": user_id, "iat": now, "exp": now + self.ttl_s, "jti": new_id(),
                  "iss": ISSUER, "aud": AUDIENCE}
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str) -> TokenClaims:
        """The claims of a valid, unexpired token of ours; raises Unauthorized for anything else."""
        if len(token) > MAX_TOKEN_CHARS:
            raise Unauthorized()
        try:
            # Pinning the algorithm refuses `alg: none` and key-confusion tokens.
            claims = jwt.decode(token, self._key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
                                options={"require": _REQUIRED})
        except jwt.PyJWTError:
            raise Unauthorized() from None
        sub, uid, jti, exp = claims.get("sub"), claims.get("uid"), claims.get("jti"), claims.get("exp")
        if not (is_identifier(sub) and is_identifier(uid) and isinstance(jti, str) and isinstance(exp, int)):
            raise Unauthorized()
        return TokenClaims(account_id=str(sub), user_id=str(uid), expires_at=exp, token_id=jti)
