"""Bearer token verification: HS256 and JWKS keys, expiry and leeway, issuer and audience, a bad key server.

Who may reach which user's tasks, and the token attack matrix, are in test_isolation.py."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from src.core.config import Settings
from src.main import create_app
from tests.conftest import User, make_token, settings_for
from tests.tokens import expiry, hand_signed


class _Keys:
    def __init__(self) -> None:
        self.ed25519 = ed25519.Ed25519PrivateKey.generate()
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.rsa_pss = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec512 = ec.generate_private_key(ec.SECP521R1())
        self.jwks = {
            "keys": [
                {**OKPAlgorithm.to_jwk(self.ed25519.public_key(), as_dict=True), "kid": "ed", "alg": "EdDSA"},
                {**RSAAlgorithm.to_jwk(self.rsa.public_key(), as_dict=True), "kid": "rsa", "alg": "RS256"},
                {**ECAlgorithm.to_jwk(self.ec.public_key(), as_dict=True), "kid": "ec", "alg": "ES256"},
                {**RSAAlgorithm.to_jwk(self.rsa_pss.public_key(), as_dict=True), "kid": "ps", "alg": "PS256"},
                {**ECAlgorithm.to_jwk(self.ec512.public_key(), as_dict=True), "kid": "ec512", "alg": "ES512"},
            ]
        }

    def sign(self, kid: str, claims: dict[str, Any]) -> str:
        signers: dict[str, tuple[Any, str]] = {
            "ed": (self.ed25519, "EdDSA"),
            "rsa": (self.rsa, "RS256"),
            "ec": (self.ec, "ES256"),
            "ps": (self.rsa_pss, "PS256"),
            "ec512": (self.ec512, "ES512"),
        }
        key, algorithm = signers[kid]
        return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


class _JwksServer:
    """A key server on loopback; `behaviour` makes it slow, broken or huge."""

    def __init__(self, document: dict[str, Any], behaviour: str = "ok") -> None:
        self.hits = 0
        self.document = document  # what it serves: a test may publish another key set
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                if behaviour == "slow":
                    time.sleep(5)
                body = {
                    "ok": json.dumps(server.document).encode(),
                    "slow": json.dumps(document).encode(),
                    "not-json": b"<html>oops</html>",
                    "huge": json.dumps({"keys": [], "padding": "x" * 200_000}).encode(),
                    "no-keys": b'{"keys": []}',
                }.get(behaviour, b"")
                self.send_response({"error": 500, "missing": 404}.get(behaviour, 200))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/auth/jwks"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@contextmanager
def _security_log() -> Iterator[list[logging.LogRecord]]:
    """The records of src.core.security, caught on its own logger (the app sets up the root logger's handlers
    when it starts)."""
    records: list[logging.LogRecord] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Catch()
    logging.getLogger("src.core.security").addHandler(handler)
    try:
        yield records
    finally:
        logging.getLogger("src.core.security").removeHandler(handler)


@pytest.fixture(scope="module")
def keys() -> _Keys:
    return _Keys()


@pytest.fixture(scope="module")
def jwks_server(keys: _Keys) -> Iterator[_JwksServer]:
    server = _JwksServer(keys.jwks)
    yield server
    server.httpd.shutdown()


@contextmanager
def _client_with(database_url: str, **overrides: Any) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(database_url, **overrides))) as client:
        yield client


@pytest.fixture
def user_tasks_status(client: TestClient, alice: User) -> Callable[..., int]:
    def status_with(token: str | None, test_client: TestClient = client, **kwargs: Any) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        response = test_client.get(alice.tasks_url, headers=headers, **kwargs)
        if response.status_code == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.headers["content-type"] == "application/problem+json"
        return response.status_code

    return status_with


def test_valid_token_is_accepted(user_tasks_status: Callable[..., int], alice: User) -> None:
    assert user_tasks_status(alice.token) == 200


def test_expiry_within_leeway_is_accepted(user_tasks_status: Callable[..., int], alice: User) -> None:
    assert user_tasks_status(make_token(alice.id, lifetime=timedelta(seconds=-10))) == 200


def test_issuer_and_audience_are_required_when_configured(
    database_url: str, user_tasks_status: Callable[..., int], alice: User
) -> None:
    with _client_with(database_url, auth_issuer="https://auth.example", auth_audience="tasks-api") as client:
        good = make_token(alice.id, iss="https://auth.example", aud="tasks-api")
        assert user_tasks_status(good, client) == 200
        assert user_tasks_status(make_token(alice.id), client) == 401
        assert user_tasks_status(make_token(alice.id, iss="https://evil.example", aud="tasks-api"), client) == 401
        assert user_tasks_status(make_token(alice.id, iss="https://auth.example", aud="other"), client) == 401
        assert user_tasks_status(make_token(alice.id, iss="https://auth.example"), client) == 401


@pytest.mark.parametrize("kid", ["ed", "rsa", "ec", "ps", "ec512"])
def test_jwks_tokens_verify(
    database_url: str,
    keys: _Keys,
    jwks_server: _JwksServer,
    user_tasks_status: Callable[..., int],
    alice: User,
    kid: str,
) -> None:
    with _client_with(database_url, auth_jwt_secret=None, auth_jwks_url=jwks_server.url) as client:
        assert user_tasks_status(keys.sign(kid, {"sub": alice.id, "exp": expiry()}), client) == 200
        assert user_tasks_status(keys.sign(kid, {"sub": "someone", "exp": expiry()}), client) == 403


def test_jwks_attacks_are_401(
    database_url: str, keys: _Keys, jwks_server: _JwksServer, user_tasks_status: Callable[..., int], alice: User
) -> None:
    claims = {"sub": alice.id, "exp": expiry()}
    public_pem = keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with _client_with(database_url, auth_jwks_url=jwks_server.url) as client:
        assert user_tasks_status(hand_signed({"alg": "HS256", "kid": "rsa"}, claims, public_pem), client) == 401
        unknown_kid = jwt.encode(claims, keys.ed25519, algorithm="EdDSA", headers={"kid": "nope"})
        assert user_tasks_status(unknown_kid, client) == 401
        wrong_alg_for_key = jwt.encode(claims, keys.rsa, algorithm="RS256", headers={"kid": "ed"})
        assert user_tasks_status(wrong_alg_for_key, client) == 401
        jku = jwt.encode(
            claims, keys.ed25519, algorithm="EdDSA", headers={"kid": "x", "jku": "http://127.0.0.1:9/jwks"}
        )
        assert user_tasks_status(jku, client) == 401
        assert user_tasks_status(keys.sign("ed", {"sub": alice.id}), client) == 401


def test_jwks_is_cached_and_unknown_kids_do_not_refetch_it(
    database_url: str, keys: _Keys, alice: User, user_tasks_status: Callable[..., int]
) -> None:
    server = _JwksServer(keys.jwks)
    try:
        with _client_with(
            database_url, auth_jwt_secret=None, auth_jwks_url=server.url, auth_jwks_min_refresh_seconds=60
        ) as client:
            for _ in range(5):
                assert user_tasks_status(keys.sign("ed", {"sub": alice.id, "exp": expiry()}), client) == 200
            for index in range(20):
                forged = jwt.encode(
                    {"sub": alice.id, "exp": expiry()}, keys.ed25519, algorithm="EdDSA", headers={"kid": f"k{index}"}
                )
                assert user_tasks_status(forged, client) == 401
        assert server.hits == 1
    finally:
        server.httpd.shutdown()


def test_unreachable_jwks_is_503_with_retry_after(database_url: str, keys: _Keys, alice: User) -> None:
    with _client_with(database_url, auth_jwt_secret=None, auth_jwks_url="http://127.0.0.1:9/jwks") as client:
        first = client.get(
            alice.tasks_url,
            headers={"Authorization": f"Bearer {keys.sign('ed', {'sub': alice.id, 'exp': expiry()})}"},
        )
        assert first.status_code == 503
        response = client.get(
            alice.tasks_url, headers={"Authorization": f"Bearer {keys.sign('ed', {'sub': alice.id, 'exp': expiry()})}"}
        )

    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("behaviour", ["slow", "error", "not-json", "huge", "no-keys"])
def test_a_bad_key_server_cannot_hang_requests(database_url: str, keys: _Keys, alice: User, behaviour: str) -> None:
    server = _JwksServer(keys.jwks, behaviour)
    token = keys.sign("ed", {"sub": alice.id, "exp": expiry()})
    try:
        with _client_with(
            database_url, auth_jwt_secret=None, auth_jwks_url=server.url, auth_jwks_timeout_seconds=1
        ) as client:
            started = time.monotonic()
            response = client.get(alice.tasks_url, headers={"Authorization": f"Bearer {token}"})
            elapsed = time.monotonic() - started
    finally:
        server.httpd.shutdown()

    assert response.status_code in {401, 503}
    assert response.headers["content-type"] == "application/problem+json"
    assert elapsed < 2.5


def test_missing_token_challenge_has_no_error_code(client: TestClient, alice: User) -> None:
    assert client.get(alice.tasks_url).headers["www-authenticate"] == "Bearer"
    bad = client.get(alice.tasks_url, headers={"Authorization": "Bearer x.y.z"})
    assert bad.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_a_token_is_refused_once_expired_even_after_it_was_accepted(
    database_url: str, user_tasks_status: Callable[..., int], alice: User
) -> None:
    with _client_with(database_url, auth_leeway_seconds=0) as client:
        token = make_token(alice.id, lifetime=timedelta(seconds=1.5))
        assert user_tasks_status(token, client) == 200
        assert user_tasks_status(token, client) == 200
        time.sleep(1.6)
        assert user_tasks_status(token, client) == 401


def test_a_key_rotated_in_is_accepted_at_once_with_the_default_settings(
    database_url: str, keys: _Keys, alice: User, user_tasks_status: Callable[..., int]
) -> None:
    """What Better Auth does on rotation: publish a new key and sign with it at once."""
    before = {"keys": [key for key in keys.jwks["keys"] if key["kid"] == "ed"]}
    server = _JwksServer(before)
    try:
        with _client_with(database_url, auth_jwt_secret=None, auth_jwks_url=server.url) as client:
            assert user_tasks_status(keys.sign("ed", {"sub": alice.id, "exp": expiry()}), client) == 200
            time.sleep(Settings.model_fields["auth_jwks_min_refresh_seconds"].default)
            server.document = keys.jwks
            assert user_tasks_status(keys.sign("ec", {"sub": alice.id, "exp": expiry()}), client) == 200
            assert user_tasks_status(keys.sign("ed", {"sub": alice.id, "exp": expiry()}), client) == 200
        assert server.hits == 2
    finally:
        server.httpd.shutdown()


def test_a_flood_of_unknown_key_ids_fetches_the_jwks_once_per_floor(
    database_url: str, keys: _Keys, alice: User, user_tasks_status: Callable[..., int]
) -> None:
    """One fetch in flight at a time, and none sooner than AUTH_JWKS_MIN_REFRESH_SECONDS after the last."""
    server = _JwksServer(keys.jwks)
    floor = Settings.model_fields["auth_jwks_min_refresh_seconds"].default

    def forged(index: int) -> str:
        claims = {"sub": alice.id, "exp": expiry()}
        return jwt.encode(claims, keys.ed25519, algorithm="EdDSA", headers={"kid": f"random-{index}"})

    try:
        with _client_with(database_url, auth_jwt_secret=None, auth_jwks_url=server.url) as client:
            assert user_tasks_status(keys.sign("ed", {"sub": alice.id, "exp": expiry()}), client) == 200
            started = time.monotonic()
            statuses: list[int] = []

            def send(index: int) -> None:
                statuses.append(user_tasks_status(forged(index), client))

            for burst in range(3):
                time.sleep(floor)
                statuses.clear()
                threads = [threading.Thread(target=send, args=(i,)) for i in range(burst * 40, burst * 40 + 40)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                assert statuses == [401] * 40
            elapsed = time.monotonic() - started
    finally:
        server.httpd.shutdown()

    print(f"\n120 requests with unknown key ids over {elapsed:.1f} s: {server.hits - 1} JWKS fetches")
    assert 1 <= server.hits - 1 <= elapsed / floor + 1


def test_a_jwks_url_that_answers_404_says_so(database_url: str, keys: _Keys, alice: User) -> None:
    server = _JwksServer(keys.jwks, "missing")
    token = keys.sign("ed", {"sub": alice.id, "exp": expiry()})
    try:
        with (
            _client_with(database_url, auth_jwt_secret=None, auth_jwks_url=server.url) as client,
            _security_log() as log,
        ):
            response = client.get(alice.tasks_url, headers={"Authorization": f"Bearer {token}"})
    finally:
        server.httpd.shutdown()

    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "answered 404 for the JWKS URL" in detail
    assert server.url not in detail
    [record] = [record for record in log if record.getMessage() == "JWKS fetch failed"]
    assert (record.url, record.status) == (server.url, 404)  # type: ignore[attr-defined]


def test_a_token_issued_ahead_of_the_clock_says_by_how_much(client: TestClient, alice: User) -> None:
    now = int(time.time())
    within_leeway = make_token(alice.id, iat=now + 20)
    ahead = make_token(alice.id, iat=now + 120)

    assert client.get(alice.tasks_url, headers={"Authorization": f"Bearer {within_leeway}"}).status_code == 200
    with _security_log() as log:
        response = client.get(alice.tasks_url, headers={"Authorization": f"Bearer {ahead}"})

    assert response.status_code == 401
    detail = response.json()["detail"]
    assert "its iat is" in detail
    assert "s ahead of this service's clock, beyond the 30 s leeway" in detail
    [record] = [record for record in log if record.getMessage() == "token from the future"]
    assert record.claim == "iat"  # type: ignore[attr-defined]
    assert 110 <= record.skew_seconds <= 121  # type: ignore[attr-defined]
