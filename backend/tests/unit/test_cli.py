"""`make token` and the .env that `make run` writes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import jwt
import pytest

from src import cli
from src.core.config import Settings

SECRET = "s" * 48


def test_token_is_a_verifiable_hs256_jwt_for_the_user() -> None:
    settings = Settings(_env_file=None, auth_jwt_secret=SECRET, auth_issuer="iss", auth_audience="aud")

    token = cli.issue_token(settings, "alice", timedelta(hours=1))

    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="aud", issuer="iss")
    assert claims["sub"] == "alice"
    assert claims["exp"] - claims["iat"] == 3600


def test_token_needs_a_secret() -> None:
    with pytest.raises(SystemExit, match="AUTH_JWT_SECRET"):
        cli.issue_token(Settings(_env_file=None), "alice", timedelta(hours=1))


def test_init_env_writes_random_secrets_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    monkeypatch.setattr(cli, "ENV_FILE", env_file)

    cli.init_env()
    first = env_file.read_text()
    cli.init_env()

    assert env_file.read_text() == first
    settings = Settings(_env_file=env_file)
    assert settings.auth_jwt_secret is not None
    assert len(settings.auth_jwt_secret.get_secret_value()) >= 32
    assert settings.cursor_secret is not None
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
