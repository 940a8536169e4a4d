"""Bearer token verification, the owner check, and the token attack matrix."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from src.main import create_app
from tests.conftest import JWT_SECRET, User, make_token, settings_for


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hand_signed(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{_b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())}"


def _with_payload(token: str, payload: dict[str, Any]) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{_b64(json.dumps(payload).encode())}.{signature}"


def _exp(delta: timedelta = timedelta(hours=1)) -> int:
    return int((datetime.now(UTC) + delta).timestamp())


class _Keys:
    def __init__(self) -> None:
        self.ed25519 = ed25519.Ed25519PrivateKey.generate()
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.jwks = {
            "keys": [
                {**OKPAlgorithm.to_jwk(self.ed25519.public_key(), as_dict=True), "kid": "ed", "alg": "EdDSA"},
                {**RSAAlgorithm.to_jwk(self.rsa.public_key(), as_dict=True), "kid": "rsa", "alg": "RS256"},
                {**ECAlgorithm.to_jwk(self.ec.public_key(), as_dict=True), "kid": "ec", "alg": "ES256"},
            ]
        }

    def sign(self, kid: str, claims: dict[str, Any]) -> str:
        if kid == "ed":
            return jwt.encode(claims, self.ed25519, algorithm="EdDSA", headers={"kid": kid})
        if kid == "rsa":
            return jwt.encode(claims, self.rsa, algorithm="RS256", headers={"kid": kid})
        return jwt.encode(claims, self.ec, algorithm="ES256", headers={"kid": kid})


class _JwksServer:
    """A key server on loopback; `behaviour` makes it slow, broken or huge."""

    def __init__(self, document: dict[str, Any], behaviour: str = "ok") -> None:
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                if behaviour == "slow":
                    time.sleep(5)
                body = {
                    "ok": json.dumps(document).encode(),
                    "slow": json.dumps(document).encode(),
                    "not-json": b"<html>oops</html>",
                    "huge": json.dumps({"keys": [], "padding": "x" * 200_000}).encode(),
                    "no-keys": b'{"keys": []}',
                }.get(behaviour, b"")
                self.send_response(500 if behaviour == "error" else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/auth/jwks"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


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


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer", "Bearer ", "Basic YWxpY2U6c2VjcmV0", "Token abc", "Bearer not.a.jwt", "Bearer a.b.c.d"],
)
def test_missing_or_malformed_authorization_is_401(client: TestClient, alice: User, authorization: str) -> None:
    response = client.get(alice.tasks_url, headers={"Authorization": authorization})

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["type"] == "urn:tasks-api:problem:unauthenticated"


def test_no_authorization_header_is_401(client: TestClient, alice: User) -> None:
    response = client.get(alice.tasks_url)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_token_in_query_string_is_ignored(client: TestClient, alice: User) -> None:
    for name in ("access_token", "token"):
        assert client.get(alice.tasks_url, params={name: alice.token}).status_code == 401


def _every_task_call(owner: User, task_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(method, url, body) for each task route, on `owner`'s collection."""
    task_url = owner.task_url(task_id)
    return [
        ("POST", owner.tasks_url, {"title": "x"}),
        ("GET", owner.tasks_url, None),
        ("GET", task_url, None),
        ("PUT", task_url, {"title": "x"}),
        ("PATCH", task_url, {"title": "x"}),
        ("PATCH", task_url + "/complete", None),
        ("DELETE", task_url, None),
    ]


def test_every_task_route_requires_a_token(client: TestClient, alice: User, create_task: Callable[..., Any]) -> None:
    for method, url, body in _every_task_call(alice, create_task(alice)["id"]):
        assert client.request(method, url, json=body).status_code == 401, (method, url)
        assert client.request(method, url, json=body, headers={"Authorization": "Bearer x"}).status_code == 401
        bad_json = {"Content-Type": "application/json"}
        assert client.request(method, url, content=b"{bad", headers=bad_json).status_code == 401, (method, url)


def test_another_users_path_is_403_before_the_body_is_judged(client: TestClient, alice: User, bob: User) -> None:
    headers = {**alice.headers, "Content-Type": "application/json"}

    assert client.post(bob.tasks_url, content=b"{bad", headers=headers).status_code == 403


def test_token_for_another_user_is_403_on_every_route(
    client: TestClient, alice: User, bob: User, create_task: Callable[..., Any]
) -> None:
    task_id = create_task(alice)["id"]
    for method, url, body in _every_task_call(alice, task_id):
        response = client.request(method, url, json=body, headers=bob.headers)
        assert response.status_code == 403, (method, url)
        assert response.json()["type"] == "urn:tasks-api:problem:forbidden"
    assert client.get(alice.task_url(task_id), headers=alice.headers).json()["version"] == 1


@pytest.mark.parametrize(
    "make_bad_token",
    [
        pytest.param(lambda sub: make_token(sub, lifetime=timedelta(minutes=-5)), id="expired"),
        pytest.param(lambda sub: jwt.encode({"sub": sub}, JWT_SECRET, algorithm="HS256"), id="no-exp"),
        pytest.param(lambda sub: make_token(None), id="no-sub"),
        pytest.param(lambda sub: make_token(""), id="empty-sub"),
        pytest.param(lambda sub: jwt.encode({"sub": 42, "exp": _exp()}, JWT_SECRET, algorithm="HS256"), id="int-sub"),
        pytest.param(
            lambda sub: make_token(sub, secret="another-secret-that-is-also-long-enough-000"), id="bad-signature"
        ),
        pytest.param(lambda sub: make_token(sub, nbf=_exp(timedelta(minutes=10))), id="future-nbf"),
        pytest.param(
            lambda sub: (
                _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
                + "."
                + _b64(json.dumps({"sub": sub, "exp": _exp()}).encode())
                + "."
            ),
            id="alg-none",
        ),
        pytest.param(
            lambda sub: _hand_signed({"alg": "HS512", "typ": "JWT"}, {"sub": sub, "exp": _exp()}, JWT_SECRET.encode()),
            id="alg-not-allowed",
        ),
        pytest.param(
            lambda sub: _with_payload(make_token(sub), {"sub": sub, "exp": _exp(timedelta(days=9))}),
            id="altered-payload",
        ),
        pytest.param(lambda sub: make_token(sub)[:-3], id="truncated-signature"),
        pytest.param(lambda sub: "x" * 9000, id="huge"),
    ],
)
def test_token_attack_is_401(
    user_tasks_status: Callable[..., int], alice: User, make_bad_token: Callable[[str], str]
) -> None:
    assert user_tasks_status(make_bad_token(alice.id)) == 401


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


@pytest.mark.parametrize("kid", ["ed", "rsa", "ec"])
def test_jwks_tokens_verify(
    database_url: str,
    keys: _Keys,
    jwks_server: _JwksServer,
    user_tasks_status: Callable[..., int],
    alice: User,
    kid: str,
) -> None:
    with _client_with(database_url, auth_jwt_secret=None, auth_jwks_url=jwks_server.url) as client:
        assert user_tasks_status(keys.sign(kid, {"sub": alice.id, "exp": _exp()}), client) == 200
        assert user_tasks_status(keys.sign(kid, {"sub": "someone", "exp": _exp()}), client) == 403


def test_jwks_attacks_are_401(
    database_url: str, keys: _Keys, jwks_server: _JwksServer, user_tasks_status: Callable[..., int], alice: User
) -> None:
    claims = {"sub": alice.id, "exp": _exp()}
    public_pem = keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with _client_with(database_url, auth_jwks_url=jwks_server.url) as client:
        assert user_tasks_status(_hand_signed({"alg": "HS256", "kid": "rsa"}, claims, public_pem), client) == 401
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
        with _client_with(database_url, auth_jwt_secret=None, auth_jwks_url=server.url) as client:
            for _ in range(5):
                assert user_tasks_status(keys.sign("ed", {"sub": alice.id, "exp": _exp()}), client) == 200
            for index in range(20):
                forged = jwt.encode(
                    {"sub": alice.id, "exp": _exp()}, keys.ed25519, algorithm="EdDSA", headers={"kid": f"k{index}"}
                )
                assert user_tasks_status(forged, client) == 401
        assert server.hits == 1
    finally:
        server.httpd.shutdown()


def test_unreachable_jwks_is_503_with_retry_after(database_url: str, keys: _Keys, alice: User) -> None:
    with _client_with(database_url, auth_jwt_secret=None, auth_jwks_url="http://127.0.0.1:9/jwks") as client:
        first = client.get(
            alice.tasks_url,
            headers={"Authorization": f"Bearer {keys.sign('ed', {'sub': alice.id, 'exp': _exp()})}"},
        )
        assert first.status_code == 503
        response = client.get(
            alice.tasks_url, headers={"Authorization": f"Bearer {keys.sign('ed', {'sub': alice.id, 'exp': _exp()})}"}
        )

    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("behaviour", ["slow", "error", "not-json", "huge", "no-keys"])
def test_a_bad_key_server_cannot_hang_requests(database_url: str, keys: _Keys, alice: User, behaviour: str) -> None:
    server = _JwksServer(keys.jwks, behaviour)
    token = keys.sign("ed", {"sub": alice.id, "exp": _exp()})
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
