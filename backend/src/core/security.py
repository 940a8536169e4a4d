"""Bearer token verification: an HS256 shared secret and/or a JWKS (EdDSA, ES256, ES512, RS256, PS256).

The algorithm comes from an allow-list matched to the key, never from the token alone; `exp` and
`sub` are required; the JWKS is fetched with a short timeout and a size cap and cached. A token with a
key id the cache does not hold (a key just rotated in) makes it fetch the JWKS again at once, one fetch
in flight at a time and at most one per `AUTH_JWKS_MIN_REFRESH_SECONDS` (1 s) however many unknown key
ids arrive; header fields such as `jku` or `x5u` are never followed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from typing import Any

import httpx
import jwt
from jwt.types import Options

from src.core.config import JWKS_ALGORITHMS, Settings
from src.core.errors import AuthenticationError, ServiceUnavailableError

logger = logging.getLogger(__name__)

MAX_TOKEN_LENGTH = 8192
VERIFIED_TOKENS_CAPACITY = 10_000
# Without any keys every request fails, so a failed first fetch is retried sooner than a refresh.
_RETRY_WITHOUT_KEYS_SECONDS = 5.0
HS256 = "HS256"


class JwksCache:
    def __init__(self, url: str, settings: Settings, client: httpx.AsyncClient) -> None:
        self._url = url
        self._client = client
        self._timeout = settings.auth_jwks_timeout_seconds
        self._max_bytes = settings.auth_jwks_max_bytes
        self._ttl = settings.auth_jwks_cache_seconds
        self._min_refresh = settings.auth_jwks_min_refresh_seconds
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        self._last_failure = "it has not been asked yet"

    async def key_for(self, kid: str | None) -> jwt.PyJWK:
        if not self._keys:
            await self._refresh(retry_after=min(_RETRY_WITHOUT_KEYS_SECONDS, self._min_refresh))
        elif time.monotonic() - self._fetched_at > self._ttl:
            self._refresh_in_background()
        if kid is not None and kid not in self._keys:
            await self._refresh(retry_after=self._min_refresh)  # a rotated key; a flood of bogus kids waits here
        if not self._keys:
            raise ServiceUnavailableError(f"the service has no token keys: {self._last_failure}; retry shortly")
        key = self._keys.get(kid)
        if key is None and kid is None and len(self._keys) == 1:
            key = next(iter(self._keys.values()))
        if key is None:
            raise AuthenticationError("token is signed with an unknown key")
        return key

    def _refresh_in_background(self) -> None:
        """Expired keys keep serving while fresh ones are fetched, so no request waits for the key server."""
        if self._background is None or self._background.done():
            self._background = asyncio.create_task(self._refresh(retry_after=self._min_refresh))

    async def _refresh(self, *, retry_after: float) -> None:
        async with self._lock:
            if time.monotonic() - self._attempted_at < retry_after:
                return
            self._attempted_at = time.monotonic()
            try:
                async with asyncio.timeout(self._timeout):
                    document = await self._fetch()
                key_set = jwt.PyJWKSet.from_dict(document)
            except (httpx.HTTPError, TimeoutError, ValueError, jwt.PyJWKSetError) as error:
                self._last_failure = _why_the_fetch_failed(error, self._timeout)
                status = error.response.status_code if isinstance(error, httpx.HTTPStatusError) else None
                logger.warning(
                    "JWKS fetch failed",
                    extra={
                        "url": self._url,
                        "status": status,
                        "error": type(error).__name__,
                        "why": self._last_failure,
                    },
                )
                return
            self._keys = {key.key_id: key for key in key_set.keys if key.algorithm_name in JWKS_ALGORITHMS}
            self._fetched_at = time.monotonic()

    async def _fetch(self) -> Any:
        chunks: list[bytes] = []
        size = 0
        async with self._client.stream("GET", self._url, timeout=self._timeout, follow_redirects=False) as response:
            response.raise_for_status()
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self._max_bytes:
                    raise ValueError("JWKS document is too large")
                chunks.append(chunk)
        return json.loads(b"".join(chunks))


def _why_the_fetch_failed(error: Exception, timeout: float) -> str:
    """What went wrong with the key server, in words a client may read (no URL, no key material)."""
    if isinstance(error, httpx.HTTPStatusError):
        return (
            f"the key server answered {error.response.status_code} for the JWKS URL "
            "(the service's AUTH_JWKS_URL may be wrong)"
        )
    if isinstance(error, TimeoutError | httpx.TimeoutException):
        return f"the key server did not answer within {timeout:g} s"
    if isinstance(error, httpx.HTTPError):
        return "the key server is not reachable"
    return "the key server's answer is not a JWKS document"


class VerifiedTokens:
    """The tokens verified lately, each with its subject and expiry: a front end sends the same token on
    every request until it expires, so its signature is checked once, not per request. Bounded (least
    recently used first out) and honouring `exp`: an entry is only used while the token is still valid."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def subject_of(self, token: str, now: float) -> str | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        subject, valid_until = entry
        if now >= valid_until:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return subject

    def remember(self, token: str, subject: str, valid_until: float) -> None:
        self._entries[token] = (subject, valid_until)
        self._entries.move_to_end(token)
        if len(self._entries) > self._capacity:
            self._entries.popitem(last=False)


class TokenVerifier:
    """Turns a bearer token into the verified subject (the user id), or raises AuthenticationError."""

    def __init__(self, settings: Settings, jwks: JwksCache | None) -> None:
        self._secret = settings.auth_jwt_secret.get_secret_value() if settings.auth_jwt_secret else None
        self._jwks = jwks
        self._issuer = settings.auth_issuer
        self._audience = settings.auth_audience
        self._leeway = settings.auth_leeway_seconds
        required = ["exp", "sub"]
        if self._issuer:
            required.append("iss")
        if self._audience:
            required.append("aud")
        self._options: Options = {
            "require": required,
            "verify_aud": self._audience is not None,
        }
        self._verified = VerifiedTokens(VERIFIED_TOKENS_CAPACITY)

    async def verify(self, token: str) -> str:
        now = time.time()
        if (subject := self._verified.subject_of(token, now)) is not None:
            return subject
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthenticationError("token is too long")
        try:
            header = jwt.get_unverified_header(token)
            algorithm = header.get("alg")
            key = await self._key_for(algorithm, header.get("kid"))
            claims = jwt.decode(
                token,
                key,
                algorithms=[str(algorithm)],
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options=self._options,
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise self._not_yet_valid(token, now) from None
        except jwt.InvalidTokenError:
            raise AuthenticationError("token is not valid") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise AuthenticationError("token has no subject")
        self._verified.remember(token, subject, valid_until=float(claims["exp"]) + self._leeway)
        return subject

    def _not_yet_valid(self, token: str, now: float) -> AuthenticationError:
        """A signed token whose `iat` or `nbf` is ahead of this service's clock by more than the leeway: the
        two clocks disagree, or the token is not meant to be used yet. Says which claim, and by how much."""
        claims = jwt.decode(token, options={"verify_signature": False})  # the signature has been checked
        for claim in ("iat", "nbf"):
            value = claims.get(claim)
            if isinstance(value, int | float) and value > now + self._leeway:
                skew = value - now
                logger.warning(
                    "token from the future",
                    extra={"claim": claim, "skew_seconds": round(skew, 1), "leeway": self._leeway},
                )
                return AuthenticationError(
                    f"token is not valid yet: its {claim} is {skew:.0f} s ahead of this service's clock, beyond the "
                    f"{self._leeway} s leeway (check the clocks of the token's issuer and of this service)"
                )
        return AuthenticationError("token is not valid yet")

    async def _key_for(self, algorithm: object, kid: object) -> Any:
        if algorithm == HS256 and self._secret is not None:
            return self._secret
        if algorithm in JWKS_ALGORITHMS and self._jwks is not None:
            key = await self._jwks.key_for(kid if isinstance(kid, str) else None)
            if key.algorithm_name != algorithm:
                raise AuthenticationError("token algorithm does not match its key")
            return key.key
        raise AuthenticationError("token algorithm is not accepted")
