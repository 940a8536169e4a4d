"""SIGTERM drains: requests in flight finish, new connections are refused, the process exits in time."""

from __future__ import annotations

import json
import signal
import socket
import time

import pytest

from tests.conftest import make_token
from tests.processes import running_service

pytestmark = pytest.mark.slow
GRACE_SECONDS = 5


def _answers_a_new_connection(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as late:
            late.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            return bool(late.recv(1))
    except OSError:
        return False


def test_sigterm_lets_the_request_in_flight_finish_and_refuses_new_ones(database_url: str) -> None:
    user_id = "drain-user"
    body = json.dumps({"title": "sent slowly"}).encode()
    head = (
        f"POST /api/v1/users/{user_id}/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {make_token(user_id)}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    extra_args = ("--timeout-graceful-shutdown", str(GRACE_SECONDS))
    with running_service(database_url, extra_args=extra_args) as service:
        port = int(service.base_url.rsplit(":", 1)[1])
        in_flight = socket.create_connection(("127.0.0.1", port))
        in_flight.sendall(head + body[:5])
        time.sleep(0.3)

        service.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(0.5)
        assert not _answers_a_new_connection(port)

        in_flight.sendall(body[5:])
        response = b""
        while chunk := in_flight.recv(65536):
            response += chunk
        in_flight.close()
        exit_code = service.process.wait(timeout=GRACE_SECONDS + 5)
        exited_after = time.monotonic() - signalled
    log = service.log()

    assert response.startswith(b"HTTP/1.1 201"), response[:200]
    assert b'"title":"sent slowly"' in response
    # uvicorn re-raises the signal once it has shut down cleanly, so the status says "terminated".
    assert exit_code in {0, -signal.SIGTERM}
    assert "Finished server process" in log
    assert exited_after < GRACE_SECONDS + 1
