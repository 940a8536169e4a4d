"""Local helpers: `python -m src.cli token alice` prints a token; `python -m src.cli init-env` writes backend/.env."""

from __future__ import annotations

import argparse
import secrets
import sys
from datetime import UTC, datetime, timedelta

import jwt

from src.core.config import BACKEND_DIR, Settings
from src.core.security import HS256

ENV_FILE = BACKEND_DIR / ".env"


def issue_token(settings: Settings, user_id: str, ttl: timedelta) -> str:
    if settings.auth_jwt_secret is None:
        raise SystemExit("AUTH_JWT_SECRET is not set: run `make run` once, or set it in backend/.env")
    now = datetime.now(UTC)
    claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl}
    if settings.auth_issuer:
        claims["iss"] = settings.auth_issuer
    if settings.auth_audience:
        claims["aud"] = settings.auth_audience
    return jwt.encode(claims, settings.auth_jwt_secret.get_secret_value(), algorithm=HS256)


def init_env() -> None:
    """Writes backend/.env with fresh random secrets, unless it already exists."""
    if ENV_FILE.exists():
        return
    ENV_FILE.write_text(
        "# Made by `make run` for local use; see .env.example for every setting.\n"
        "ENVIRONMENT=development\n"
        f"AUTH_JWT_SECRET={secrets.token_urlsafe(48)}\n"
        f"CURSOR_SECRET={secrets.token_urlsafe(48)}\n"
    )
    ENV_FILE.chmod(0o600)
    print(f"wrote {ENV_FILE} with new random secrets", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m src.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser("token", help="print an HS256 bearer token for a user")
    token.add_argument("user_id")
    token.add_argument("--hours", type=float, default=12.0, help="lifetime (default 12 hours)")
    commands.add_parser("init-env", help="write backend/.env with random secrets if it is missing")
    args = parser.parse_args(argv)
    if args.command == "token":
        print(issue_token(Settings(), args.user_id, timedelta(hours=args.hours)))
    else:
        init_env()


if __name__ == "__main__":
    main()
