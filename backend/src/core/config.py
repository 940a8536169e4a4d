"""Every setting the service reads, in one pydantic-settings class."""

from __future__ import annotations

import secrets
from datetime import timedelta
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

BACKEND_DIR = Path(__file__).resolve().parents[2]
DEFAULT_SQLITE_PATH = BACKEND_DIR / "tasks.db"
EXAMPLE_SECRET = "change-me-to-a-long-random-string-of-at-least-32-characters"  # noqa: S105
MIN_SECRET_LENGTH = 32
JWKS_ALGORITHMS = ("EdDSA", "ES256", "ES512", "RS256", "PS256")  # every key type Better Auth 1.7 can issue


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


def normalize_database_url(url: str) -> str:
    """Give every URL an explicit async driver, so one URL serves the app and Alembic."""
    for prefix in (
        "postgres://",
        "postgresql://",
        "postgresql+psycopg2://",
        "postgresql+asyncpg://",
    ):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=BACKEND_DIR / ".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    environment: Environment = Environment.DEVELOPMENT
    log_level: str = "INFO"
    log_format: Literal["json", "console"] | None = Field(
        default=None, description="Default: json in production, console elsewhere."
    )
    metrics_enabled: bool = True

    web_concurrency: int = Field(default=1, ge=1)
    forwarded_allow_ips: str = "127.0.0.1"
    keep_alive_seconds: int = Field(default=5, ge=1)
    graceful_shutdown_seconds: int = Field(default=20, ge=1)
    cors_origins: Annotated[list[str], NoDecode] = []

    database_url: str = f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH}"
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=5, ge=0)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    db_acquire_timeout_seconds: float = Field(
        default=0.8, gt=0, description="How long a request may wait for a database connection before a 503."
    )
    db_pool_recycle_seconds: int = Field(default=1800, ge=-1)
    db_pool_pre_ping: bool = True
    db_pool_pre_ping_idle_seconds: float = Field(default=1.0, ge=0)
    db_connect_timeout_seconds: int = Field(default=5, ge=1)
    db_statement_timeout_ms: int = Field(default=10_000, ge=0)
    db_transaction_pooler: bool = Field(
        default=False, description="DATABASE_URL points at PgBouncer (or alike) in transaction pooling mode."
    )

    auth_jwt_secret: SecretStr | None = None
    auth_jwks_url: str | None = None
    auth_issuer: str | None = None
    auth_audience: str | None = None
    auth_leeway_seconds: int = Field(default=30, ge=0, le=300)
    auth_jwks_cache_seconds: int = Field(default=300, ge=1)
    auth_jwks_timeout_seconds: float = Field(default=3.0, gt=0, le=30)
    auth_jwks_min_refresh_seconds: float = Field(default=1.0, gt=0)
    auth_jwks_max_bytes: int = Field(default=64 * 1024, ge=1024)

    cursor_secret: SecretStr | None = None

    idempotency_retention_seconds: int = Field(default=86_400, ge=60)
    idempotency_purge_interval_seconds: float = Field(default=600, gt=0)

    trash_retention_days: int = Field(default=30, ge=1, le=3650)
    trash_purge_interval_seconds: float = Field(default=600, gt=0)
    sync_retention_days: int = Field(default=30, ge=1, le=3650)

    max_request_body_bytes: int = Field(default=64 * 1024, ge=1024)

    @field_validator("database_url")
    @classmethod
    def _explicit_driver(cls, url: str) -> str:
        return normalize_database_url(url)

    @field_validator(
        "auth_jwt_secret",
        "cursor_secret",
        "auth_jwks_url",
        "auth_issuer",
        "auth_audience",
        "log_format",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _removals_outlive_the_trash(self) -> Settings:
        # A sync token must be able to outlive a task's stay in the trash: a client that synced while the
        # task was live learns of its removal for as long as it could still have restored it.
        if self.sync_retention_days < self.trash_retention_days:
            raise ValueError("SYNC_RETENTION_DAYS must be at least TRASH_RETENTION_DAYS")
        return self

    @model_validator(mode="after")
    def _safe_for_production(self) -> Settings:
        if self.environment is not Environment.PRODUCTION:
            return self
        problems = []
        if self.auth_jwt_secret is None and self.auth_jwks_url is None:
            problems.append("no token verification is configured: set AUTH_JWKS_URL and/or AUTH_JWT_SECRET")
        if self.auth_jwt_secret is not None:
            problems.extend(_secret_problems("AUTH_JWT_SECRET", self.auth_jwt_secret))
        if self.cursor_secret is None:
            problems.append("CURSOR_SECRET is not set: every instance must sign page cursors with the same key")
        else:
            problems.extend(_secret_problems("CURSOR_SECRET", self.cursor_secret))
        if self.database_url.startswith("sqlite"):
            problems.append("DATABASE_URL points at SQLite: production runs on PostgreSQL")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @property
    def effective_log_format(self) -> str:
        if self.log_format is not None:
            return self.log_format
        return "json" if self.environment is Environment.PRODUCTION else "console"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def trash_retention(self) -> timedelta:
        return timedelta(days=self.trash_retention_days)

    @property
    def sync_retention(self) -> timedelta:
        return timedelta(days=self.sync_retention_days)

    @cached_property
    def cursor_key(self) -> bytes:
        """The key that signs page cursors; a random one per process when none is configured."""
        if self.cursor_secret is not None:
            return self.cursor_secret.get_secret_value().encode()
        return secrets.token_bytes(32)


def load_settings() -> Settings:
    """Settings from the environment and backend/.env, or a clean exit that says what is wrong."""
    try:
        return Settings()
    except ValidationError as error:
        problems = [
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
            for e in error.errors(include_input=False, include_url=False)
        ]
        raise SystemExit("Tasks API cannot start.\n  " + "\n  ".join(problems)) from None


def _secret_problems(name: str, secret: SecretStr) -> list[str]:
    value = secret.get_secret_value()
    if value == EXAMPLE_SECRET:
        return [f"{name} is the example value from .env.example"]
    if len(value) < MIN_SECRET_LENGTH:
        return [f"{name} is shorter than {MIN_SECRET_LENGTH} characters"]
    return []
