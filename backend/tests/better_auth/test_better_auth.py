"""The service behind a real Better Auth server: Better Auth 1.7 with its JWT plugin and an SQLite file,
on 127.0.0.1 (server.mjs, versions pinned by package-lock.json, installed here with `npm ci`), and the
service under uvicorn pointed at its JWKS, issuer and audience. Users sign up with email and password,
take the JWT from `/api/auth/token`, and use the API with it."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from tests.conftest import IN_CI
from tests.processes import ServiceProcess, free_port, running_service, stop

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]

SERVER_DIR = Path(__file__).parent
ALGORITHMS = ["EdDSA", "ES256", "ES512", "RS256", "PS256"]


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    """`npm ci` from the lock file, once per lock file (it builds better-sqlite3 from source: a minute)."""
    if shutil.which("npm") is None:
        message = "Node.js and npm are not installed: the Better Auth test did not run"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    lock = SERVER_DIR / "package-lock.json"
    done = SERVER_DIR / "node_modules" / ".installed-from"
    if done.exists() and done.read_text() == lock.read_text():
        return
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"],  # noqa: S607
        cwd=SERVER_DIR,
        check=True,
        timeout=900,
        capture_output=True,
    )
    done.write_text(lock.read_text())


@dataclass
class BetterAuth:
    base_url: str

    def sign_up(self) -> Account:
        email = f"user-{uuid.uuid4().hex[:12]}@example.com"
        with httpx.Client(base_url=self.base_url, headers={"Origin": self.base_url}, timeout=10) as client:
            signed_up = client.post(
                "/api/auth/sign-up/email", json={"email": email, "password": "a-long-password-0123", "name": "A"}
            )
            assert signed_up.status_code == 200, signed_up.text
            body = signed_up.json()
            return Account(self, client.cookies, body["user"]["id"], body["token"])


@dataclass
class Account:
    server: BetterAuth
    cookies: httpx.Cookies
    user_id: str
    session_token: str

    def jwt(self) -> str:
        """What `authClient.token()` gives a front end."""
        response = httpx.get(f"{self.server.base_url}/api/auth/token", cookies=self.cookies, timeout=10)
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token


@contextlib.contextmanager
def better_auth(algorithm: str = "EdDSA", **env: str) -> Iterator[BetterAuth]:
    port = free_port()
    database = Path(tempfile.mkdtemp()) / "auth.db"
    environment = {**os.environ, "PORT": str(port), "DATABASE": str(database), "ALG": algorithm, **env}
    process = subprocess.Popen(
        ["node", "server.mjs"],  # noqa: S607
        cwd=SERVER_DIR,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        assert first_line.strip() == "ready", first_line + process.stdout.read()
        yield BetterAuth(f"http://127.0.0.1:{port}")
    finally:
        stop(process)


@contextlib.contextmanager
def service_for(database_url: str, server: BetterAuth, **env: str) -> Iterator[ServiceProcess]:
    settings = {
        "AUTH_JWKS_URL": f"{server.base_url}/api/auth/jwks",
        "AUTH_ISSUER": server.base_url,
        "AUTH_AUDIENCE": server.base_url,
        **env,
    }
    with running_service(database_url, env=settings) as service:
        yield service


def _api(service: ServiceProcess, token: str) -> httpx.Client:
    return httpx.Client(base_url=service.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_a_better_auth_user_drives_the_api_with_the_jwt(database_url: str) -> None:
    with better_auth() as server, service_for(database_url, server) as service:
        alice, bob = server.sign_up(), server.sign_up()
        token = alice.jwt()
        tasks = f"/api/v1/users/{alice.user_id}/tasks"
        with _api(service, token) as api:
            created = api.post(tasks, json={"title": "Buy milk"})
            assert created.status_code == 201, created.text
            task_id = created.json()["id"]
            assert [task["id"] for task in api.get(tasks).json()["items"]] == [task_id]
            assert api.patch(f"{tasks}/{task_id}/complete").json()["completed"] is True
            assert api.delete(f"{tasks}/{task_id}").status_code == 204
            assert api.get(f"/api/v1/users/{bob.user_id}/tasks").status_code == 403
        header, payload, signature = token.split(".")
        tampered = f"{header}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
        for refused in (tampered, alice.session_token):
            with _api(service, refused) as api:
                response = api.get(tasks)
                assert response.status_code == 401, refused
                assert response.headers["content-type"] == "application/problem+json"


def test_an_expired_token_is_accepted_within_the_leeway_only(database_url: str) -> None:
    with better_auth(EXPIRATION="2s") as server:
        alice = server.sign_up()
        token = alice.jwt()
        time.sleep(3.5)
        tasks = f"/api/v1/users/{alice.user_id}/tasks"
        with service_for(database_url, server) as lenient, _api(lenient, token) as api:
            assert api.get(tasks).status_code == 200
        with service_for(database_url, server, AUTH_LEEWAY_SECONDS="0") as strict, _api(strict, token) as api:
            response = api.get(tasks)
            assert response.status_code == 401
            assert response.json()["detail"] == "token has expired"


def test_a_token_signed_with_a_newly_rotated_key_is_accepted_at_once(database_url: str) -> None:
    with better_auth(ROTATION_SECONDS="2") as server, service_for(database_url, server) as service:
        alice = server.sign_up()
        tasks = f"/api/v1/users/{alice.user_id}/tasks"
        before = alice.jwt()
        with _api(service, before) as api:
            assert api.get(tasks).status_code == 200
        time.sleep(2.5)
        after = alice.jwt()
        assert jwt.get_unverified_header(after)["kid"] != jwt.get_unverified_header(before)["kid"]
        with _api(service, after) as api:
            assert api.get(tasks).status_code == 200
        with _api(service, before) as api:  # the old key stays published for its grace period
            assert api.get(tasks).status_code == 200


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_key_algorithm_better_auth_offers_is_accepted(database_url: str, algorithm: str) -> None:
    with better_auth(algorithm) as server, service_for(database_url, server) as service:
        alice = server.sign_up()
        token = alice.jwt()
        assert jwt.get_unverified_header(token)["alg"] == algorithm
        with _api(service, token) as api:
            assert api.get(f"/api/v1/users/{alice.user_id}/tasks").status_code == 200
