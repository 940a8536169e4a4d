"""Command line: `token alice` prints a local token, `init-env` writes backend/.env, `serve` runs the
service as in production (`python -m src.cli serve --host 0.0.0.0 --port 8000`)."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
from datetime import UTC, datetime, timedelta

import jwt
import uvicorn

from src.core.config import BACKEND_DIR, Settings, load_settings
from src.core.logging import configure_logging
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


def openapi_document() -> str:
    """The served OpenAPI document, as committed in backend/openapi.json."""
    from src.main import create_app  # noqa: PLC0415 - the app is only built for this command

    settings = Settings(_env_file=None, environment="test")
    return json.dumps(create_app(settings).openapi(), indent=2, ensure_ascii=False) + "\n"


def serve(settings: Settings, *, host: str, port: int) -> None:
    """Runs the service as in production: uvicorn workers, proxy headers from trusted addresses only."""
    configure_logging(settings.log_level, settings.effective_log_format)
    if settings.metrics_enabled and settings.web_concurrency > 1:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="tasks-api-metrics-"))
    uvicorn.run(
        "src.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=settings.web_concurrency,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_keep_alive=settings.keep_alive_seconds,
        timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
        access_log=False,
        log_config=None,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m src.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser("token", help="print an HS256 bearer token for a user")
    token.add_argument("user_id")
    token.add_argument("--hours", type=float, default=12.0, help="lifetime (default 12 hours)")
    commands.add_parser("init-env", help="write backend/.env with random secrets if it is missing")
    commands.add_parser("openapi", help="print the OpenAPI document (make openapi writes backend/openapi.json)")
    serve_command = commands.add_parser("serve", help="run the service in production mode (settings from the env)")
    serve_command.add_argument("--host", default="127.0.0.1")
    serve_command.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    if args.command == "token":
        print(issue_token(Settings(), args.user_id, timedelta(hours=args.hours)))
    elif args.command == "openapi":
        print(openapi_document())
    elif args.command == "serve":
        serve(load_settings(), host=args.host, port=args.port)
    else:
        init_env()


if __name__ == "__main__":
    main()
