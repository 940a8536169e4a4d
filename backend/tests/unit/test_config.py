"""Settings: one URL normalised to an explicit driver, and production refuses unsafe values."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from src.core.config import BACKEND_DIR, EXAMPLE_SECRET, Settings, load_settings

STRONG = "x" * 40
PG = "postgresql://tasks@db:5432/tasks"


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///tasks.db", "sqlite+aiosqlite:///tasks.db"),
        ("sqlite+aiosqlite:////tmp/t.db", "sqlite+aiosqlite:////tmp/t.db"),
    ],
)
def test_database_url_gets_an_explicit_async_driver(given: str, expected: str) -> None:
    assert _settings(database_url=given).database_url == expected


def test_default_database_is_an_sqlite_file_under_backend() -> None:
    url = _settings().database_url
    assert url.startswith("sqlite+aiosqlite:///")
    assert url.endswith("/backend/tasks.db")


def test_production_with_safe_values_starts() -> None:
    settings = _settings(environment="production", auth_jwt_secret=STRONG, cursor_secret=STRONG, database_url=PG)
    assert settings.cursor_key == STRONG.encode()


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"cursor_secret": STRONG}, "no token verification"),
        ({"auth_jwt_secret": "short", "cursor_secret": STRONG}, "AUTH_JWT_SECRET is shorter"),
        ({"auth_jwt_secret": EXAMPLE_SECRET, "cursor_secret": STRONG}, "AUTH_JWT_SECRET is the example"),
        ({"auth_jwks_url": "https://app.example/api/auth/jwks"}, "CURSOR_SECRET is not set"),
        ({"auth_jwks_url": "https://app.example/api/auth/jwks", "cursor_secret": "short"}, "CURSOR_SECRET is shorter"),
        ({"auth_jwt_secret": STRONG, "cursor_secret": STRONG, "database_url": "sqlite:///x.db"}, "SQLite"),
    ],
)
def test_production_refuses_to_start_and_says_why(values: dict[str, Any], reason: str) -> None:
    values = {"database_url": PG, **values}
    with pytest.raises(ValidationError, match=reason):
        _settings(environment="production", **values)


def test_development_allows_no_verification_and_makes_a_cursor_key() -> None:
    settings = _settings()
    assert settings.auth_jwt_secret is None
    assert len(settings.cursor_key) == 32
    assert settings.cursor_key == settings.cursor_key


def test_blank_optional_settings_mean_unset() -> None:
    settings = _settings(auth_jwks_url="", auth_issuer=" ", auth_audience="")
    assert (settings.auth_jwks_url, settings.auth_issuer, settings.auth_audience) == (None, None, None)


def test_load_settings_exits_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("AUTH_JWT_SECRET", "short")

    with pytest.raises(SystemExit, match="AUTH_JWT_SECRET is shorter than 32 characters"):
        load_settings()


@pytest.mark.parametrize("document", [".env.example", "docs/configuration.md"])
def test_every_setting_is_documented(document: str) -> None:
    text = (BACKEND_DIR / document).read_text()

    missing = [name.upper() for name in Settings.model_fields if name.upper() not in text]
    assert missing == []


def test_the_example_env_file_loads() -> None:
    settings = Settings(_env_file=BACKEND_DIR / ".env.example")

    assert settings.log_format is None
    assert settings.cors_origins == []


def test_sync_tokens_outlive_the_trash() -> None:
    assert _settings(trash_retention_days=30, sync_retention_days=30).sync_retention.days == 30
    with pytest.raises(ValidationError, match="SYNC_RETENTION_DAYS must be at least TRASH_RETENTION_DAYS"):
        _settings(trash_retention_days=30, sync_retention_days=29)
