"""Hand-made tokens for the authentication tests: encodings, expiries and signatures PyJWT would refuse to make."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    """An HMAC-SHA256 signature under any header, whatever algorithm it claims."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())}"


def with_payload(token: str, payload: dict[str, Any]) -> str:
    """The token with its payload replaced and its signature kept."""
    header, _, signature = token.split(".")
    return f"{header}.{b64(json.dumps(payload).encode())}.{signature}"


def expiry(delta: timedelta = timedelta(hours=1)) -> int:
    return int((datetime.now(UTC) + delta).timestamp())
