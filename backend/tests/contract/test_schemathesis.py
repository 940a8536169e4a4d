"""Property-based fuzzing of the whole OpenAPI schema with schemathesis, against the in-process app.

Requests go out as one user (`alice`): her token is in `Authorization` and her id is the `{user_id}` of
every path, so generated requests reach validation and storage instead of stopping at the 403 for
another user's collection. A second user (`bob`) is her peer for the object-level-authorization check,
which replays alice's successful reads of her own tasks with bob's token.

Every check is on, in positive and negative modes, NUL bytes included, with a bounded, derandomized
number of examples per operation so CI stays fast and a failure replays. A failure is a defect in the
service or in its OpenAPI document. What the checks are told, and why it narrows nothing:
- 412 is a success-path answer: a well-formed If-Match naming another version, like the 404 for an
  unknown id that schemathesis already accepts;
- the task list and the trash answer 422 to any cursor the service did not sign, and the change feed to
  any `since` token it did not; no generator can forge one;
- a client sends a new Idempotency-Key for each new task (the same key with another body is a 422 by
  design), so a drawn key is made unique to its body.

schemathesis 4.32 cannot send lone surrogates: it crashes on one in any string with a `pattern` and in
a query value, so its codec stays UTF-8 and the last test here sends them in every body field itself.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import strategies as st
from schemathesis.python import asgi
from sqlalchemy import Engine

from src.main import create_app
from tests.conftest import User, make_token, settings_for, stored_count, stored_task

MAX_EXAMPLES = 50
STATEFUL_SCENARIOS = 25
STATEFUL_STEPS = 10
SEED = 20261126
OWNER = "alice"
PEER = "bob"
# schemathesis' defaults plus 412.
ACCEPTED_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "412", "429", "5xx"]
# Operations with a parameter only the service can make (a signed cursor or sync token).
SIGNED_PARAMETERS = [
    "GET /api/v1/users/{user_id}/tasks",
    "GET /api/v1/users/{user_id}/trash",
    "GET /api/v1/users/{user_id}/changes",
]
IDEMPOTENCY_KEY = "Idempotency-Key"
_WELL_FORMED_KEY = re.compile(r"[!-~]{1,255}")
_KEY_SUFFIX_LENGTH = 17


def new_user(name: str) -> User:
    user_id = f"fuzz-{name}-{uuid.uuid4().hex[:12]}"
    return User(id=user_id, token=make_token(user_id))


@pytest.fixture(scope="module")
def users() -> dict[str, User]:
    """The owner and the peer, new for each run so earlier data never interferes."""
    return {OWNER: new_user(OWNER), PEER: new_user(PEER)}


@pytest.fixture(scope="module")
def fuzz_app(database_url: str) -> Iterator[FastAPI]:
    """An app of its own: schemathesis runs its lifespan on the first request and stops it here."""
    yield create_app(settings_for(database_url))
    asgi.shutdown_lifespans()


@pytest.fixture(scope="module")
def fuzz_schema(
    fuzz_app: FastAPI, users: dict[str, User], tmp_path_factory: pytest.TempPathFactory
) -> schemathesis.BaseSchema:
    # A Web Fuzzing Commons auth document: a static bearer token for each user.
    auth_document = tmp_path_factory.mktemp("schemathesis") / "auth.json"
    auth_document.write_text(
        json.dumps(
            {
                "auth": [
                    {"name": name, "fixedHeaders": [{"name": "Authorization", "value": user.headers["Authorization"]}]}
                    for name, user in users.items()
                ]
            }
        ),
        encoding="utf-8",
    )
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "allow-x00": True,
                "codec": "utf-8",
                "database": "none",
            },
            "checks": {"enabled": True, "positive_data_acceptance": {"expected-statuses": ACCEPTED_STATUSES}},
            "operations": [
                {
                    "include-name": name,
                    "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED_STATUSES, "422"]}},
                }
                for name in SIGNED_PARAMETERS
            ],
            "auth": {"wfc": {"path": str(auth_document), "user": OWNER, "peers": [OWNER, PEER]}},
            "parameters": {"path.user_id": users[OWNER].id},
        }
    )
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app, config=config)


def one_key_per_body(case: schemathesis.Case[Any]) -> None:
    """Make a well-formed Idempotency-Key unique to the body it goes with; a malformed one stays as drawn."""
    key = case.headers.get(IDEMPOTENCY_KEY)
    if isinstance(key, str) and _WELL_FORMED_KEY.fullmatch(key):
        body = repr(case.body).encode("utf-8", "surrogatepass")
        suffix = "." + hashlib.sha256(body).hexdigest()[: _KEY_SUFFIX_LENGTH - 1]
        # schemathesis revalidates a changed case, so its positive or negative label stays right.
        case.headers[IDEMPOTENCY_KEY] = key[: 255 - _KEY_SUFFIX_LENGTH] + suffix


schema = schemathesis.pytest.from_fixture("fuzz_schema")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's lazy loader reads and renames `node._nodeid`, which pytest 9 no longer has."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@schema.parametrize()
def test_every_operation_answers_generated_input_as_documented(case: schemathesis.Case[Any]) -> None:
    one_key_per_body(case)
    case.call_and_validate()


def test_workflows_keep_each_users_tasks_to_themselves(
    fuzz_schema: schemathesis.BaseSchema, users: dict[str, User]
) -> None:
    """Chains of calls linked by the ids they return (create, read, list, change, delete), every check
    on each response; object-level authorization replays the owner's reads as the peer."""
    configured_owner = users[OWNER].headers["Authorization"]

    class Workflow(fuzz_schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # A new owner for each scenario, so what its steps get back depends on those steps alone (as
            # Hypothesis needs to replay it), not on the tasks earlier scenarios left behind.
            self.owner = new_user(OWNER)

        def before_call(self, case: schemathesis.Case[Any]) -> None:
            # The state machine does not apply `parameters` from the config; schemathesis revalidates the case.
            case.path_parameters = {**case.path_parameters, "user_id": self.owner.id}
            if case.headers.get("Authorization") == configured_owner:
                case.headers["Authorization"] = self.owner.headers["Authorization"]
            one_key_per_body(case)
            super().before_call(case)

    Workflow.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=STATEFUL_STEPS,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            # A shrunk replay meets the rows the first attempt left, so it is not the same run.
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
    )


_LONE_SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
_WITH_LONE_SURROGATE = st.tuples(st.text(max_size=5), _LONE_SURROGATE, st.text(max_size=5)).map("".join)


@st.composite
def bodies_with_a_lone_surrogate(draw: st.DrawFn) -> bytes:
    """A JSON object, valid but for one lone surrogate (a `\\udXXX` escape) in a value or a key."""
    body: dict[str, Any] = {"title": "A task", "description": None, "completed": False}
    field = draw(st.sampled_from([*body, "key"]))
    if field == "key":
        body[draw(_WITH_LONE_SURROGATE)] = draw(st.text(max_size=5))
    else:
        body[field] = draw(_WITH_LONE_SURROGATE)
    return json.dumps(body).encode()


@pytest.mark.parametrize(("method", "path"), [("POST", ""), ("PUT", "/{id}"), ("PATCH", "/{id}")])
@hypothesis.settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None)
@hypothesis.given(body=bodies_with_a_lone_surrogate())
def test_lone_surrogates_in_a_body_are_a_422_problem_and_store_nothing(
    client: TestClient, db: Engine, method: str, path: str, body: bytes
) -> None:
    user = new_user(OWNER)
    created = client.post(user.tasks_url, json={"title": "Before"}, headers=user.headers).json()
    before = stored_task(db, created["id"])
    headers = {**user.headers, "Content-Type": "application/json"}

    response = client.request(method, user.tasks_url + path.format(id=created["id"]), content=body, headers=headers)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert stored_task(db, created["id"]) == before
    assert stored_count(db, user.id) == 1
