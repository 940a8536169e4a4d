"""The list's filters (priority, tag, due window, search) and the due-date and priority orders, alone and
combined, paged while other requests write; and the tags overview."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from src.models.task import TagSummary
from tests.conftest import User, walk_pages

CreateTask = Callable[..., dict[str, Any]]
PRIORITY_RANK = {"none": 0, "low": 1, "medium": 2, "high": 3}


def _titles(client: TestClient, user: User, **params: Any) -> list[str]:
    response = client.get(user.tasks_url, params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return sorted(item["title"] for item in response.json()["items"])


def test_priority_filter_takes_any_of_the_given_priorities(
    client: TestClient, create_task: CreateTask, alice: User
) -> None:
    for priority in ["none", "low", "medium", "high"]:
        create_task(alice, title=priority, priority=priority)

    assert _titles(client, alice, priority="high") == ["high"]
    assert _titles(client, alice, priority=["high", "medium"]) == ["high", "medium"]
    assert _titles(client, alice, priority=["none", "none"]) == ["none"]


def test_tag_filter_needs_every_tag_compared_without_case(
    client: TestClient, create_task: CreateTask, alice: User, bob: User
) -> None:
    create_task(alice, title="both", tags=["Work", "home"])
    create_task(alice, title="work", tags=["work"])
    create_task(alice, title="street", tags=["Straße"])
    create_task(alice, title="none")
    create_task(bob, title="bob's", tags=["work"])

    assert _titles(client, alice, tag="WORK") == ["both", "work"]
    assert _titles(client, alice, tag=["work", "HOME"]) == ["both"]
    assert _titles(client, alice, tag="strasse") == ["street"]
    assert _titles(client, alice, tag=" work ") == ["both", "work"]
    assert _titles(client, alice, tag="garden") == []


def test_due_window_includes_its_start_excludes_its_end_and_leaves_out_undated_tasks(
    client: TestClient, create_task: CreateTask, alice: User
) -> None:
    create_task(alice, title="early", due_at="2026-12-01T00:00:00Z")
    create_task(alice, title="start", due_at="2026-12-02T01:00:00+01:00")  # 00:00 UTC
    create_task(alice, title="inside", due_at="2026-12-03T12:00:00Z")
    create_task(alice, title="end", due_at="2026-12-04T00:00:00Z")
    create_task(alice, title="undated")

    window = {"due_after": "2026-12-02T00:00:00Z", "due_before": "2026-12-04T00:00:00Z"}
    assert _titles(client, alice, **window) == ["inside", "start"]
    assert _titles(client, alice, due_before="2026-12-02T00:00:00Z") == ["early"]
    assert _titles(client, alice, due_after="2026-12-03T00:00:00-05:00") == ["end", "inside"]


def test_search_finds_every_word_in_the_title_or_the_description_without_case(
    client: TestClient, create_task: CreateTask, alice: User
) -> None:
    create_task(alice, title="Buy milk")
    create_task(alice, title="Call school", description="L'école de Marie")
    create_task(alice, title="Straße fegen")
    create_task(alice, title="100% done_now", description="back\\slash")
    create_task(alice, title="Other")

    assert _titles(client, alice, q="MILK") == ["Buy milk"]
    assert _titles(client, alice, q="ÉCOLE") == ["Call school"]
    assert _titles(client, alice, q="mil buy") == ["Buy milk"]
    assert _titles(client, alice, q="school marie") == ["Call school"]  # one word in each
    assert _titles(client, alice, q="milk school") == []
    assert _titles(client, alice, q="STRASSE") == ["Straße fegen"]
    assert _titles(client, alice, q="%") == ["100% done_now"]
    assert _titles(client, alice, q="e_n") == ["100% done_now"]
    assert _titles(client, alice, q="\\") == ["100% done_now"]
    assert _titles(client, alice, q="o%e") == []


def test_search_follows_edits_of_the_title_and_description(
    client: TestClient, create_task: CreateTask, alice: User
) -> None:
    task = create_task(alice, title="Buy milk", description="today")
    client.patch(alice.task_url(task["id"]), json={"title": "Buy bread"}, headers=alice.headers)

    assert _titles(client, alice, q="milk") == []
    assert _titles(client, alice, q="bread today") == ["Buy bread"]
    client.patch(alice.task_url(task["id"]), json={"description": None}, headers=alice.headers)
    assert _titles(client, alice, q="today") == []


def test_filters_combine_with_each_other_and_with_the_status(
    client: TestClient, create_task: CreateTask, alice: User
) -> None:
    create_task(alice, title="match", priority="high", tags=["work"], due_at="2026-12-03T00:00:00Z")
    create_task(
        alice, title="done match", priority="high", tags=["work"], due_at="2026-12-03T00:00:00Z", completed=True
    )
    create_task(alice, title="low match", priority="low", tags=["work"], due_at="2026-12-03T00:00:00Z")
    create_task(alice, title="untagged match", priority="high", due_at="2026-12-03T00:00:00Z")
    create_task(alice, title="late match", priority="high", tags=["work"], due_at="2027-01-03T00:00:00Z")

    params = {"priority": "high", "tag": "work", "due_before": "2027-01-01T00:00:00Z", "q": "match"}
    assert _titles(client, alice, **params) == ["done match", "match"]
    assert _titles(client, alice, **params, status="pending") == ["match"]
    assert _titles(client, alice, **params, status="completed", sort="-due_at") == ["done match"]


@pytest.mark.parametrize(
    "params",
    [
        {"priority": "urgent"},
        {"priority": ""},
        {"tag": ""},
        {"tag": "   "},
        {"tag": "x" * 33},
        {"due_before": "2026-12-01T00:00:00"},
        {"due_after": "2026-12-01"},
        {"due_after": ""},
        {"q": ""},
        {"q": "   "},
        {"q": "x" * 201},
        {"q": "a\u0000b"},
        {"tag": [f"t{index}" for index in range(21)]},
    ],
)
def test_bad_filters_are_422(client: TestClient, alice: User, params: dict[str, Any]) -> None:
    response = client.get(alice.tasks_url, params=params, headers=alice.headers)

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"][:2] == ["query", next(iter(params))]


def test_a_cursor_made_with_other_filters_is_422(client: TestClient, create_task: CreateTask, alice: User) -> None:
    for index in range(3):
        create_task(alice, title=f"work {index}", tags=["work"], priority="high")
    cursor = client.get(alice.tasks_url, params={"tag": "work", "limit": 1}, headers=alice.headers).json()
    assert cursor["next_cursor"]

    others: list[dict[str, Any]] = [{}, {"tag": "home"}, {"tag": ["work", "home"]}, {"tag": "work", "priority": "high"}]
    for other in others:
        response = client.get(
            alice.tasks_url, params={**other, "limit": 1, "cursor": cursor["next_cursor"]}, headers=alice.headers
        )
        assert response.status_code == 422, other
    same = client.get(
        alice.tasks_url, params={"tag": "WORK", "limit": 1, "cursor": cursor["next_cursor"]}, headers=alice.headers
    )
    assert same.status_code == 200


# Paging every order through a list with equal keys, with and without due dates, while others write.

NEW_SORTS = ["due_at", "-due_at", "priority", "-priority"]


def _walk(client: TestClient, user: User, between_pages: Callable[[], None], **params: Any) -> Iterator[dict[str, Any]]:
    for page in walk_pages(client, user, between_pages, **params):
        yield from page


def _expected(tasks: list[dict[str, Any]], sort: str) -> list[str]:
    descending = sort.startswith("-")
    if sort.lstrip("-") == "priority":
        ranked = sorted(tasks, key=lambda task: (PRIORITY_RANK[task["priority"]], task["id"]), reverse=descending)
        return [task["id"] for task in ranked]
    dated = sorted(
        (task for task in tasks if task["due_at"] is not None),
        key=lambda task: (task["due_at"], task["id"]),
        reverse=descending,
    )
    undated = sorted(
        (task for task in tasks if task["due_at"] is None), key=lambda task: task["id"], reverse=descending
    )
    return [task["id"] for task in [*dated, *undated]]


@pytest.mark.parametrize("status", ["all", "pending"])
@pytest.mark.parametrize("sort", NEW_SORTS)
def test_every_new_order_pages_through_every_task_once_while_others_write(
    client: TestClient, create_task: CreateTask, make_user: Callable[[str], User], sort: str, status: str
) -> None:
    user = make_user("pager")
    rng = random.Random(sort + status)
    days = [None, "2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z", "2026-12-03T00:00:00Z"]
    originals = [
        create_task(
            user,
            title=f"t{index}",
            due_at=rng.choice(days),
            priority=rng.choice(list(PRIORITY_RANK)),
            completed=index % 4 == 0,
        )
        for index in range(30)
    ]
    writes = iter(range(1000))

    def write_elsewhere() -> None:
        # New tasks, and changes that keep every original's place in the order.
        step = next(writes)
        create_task(user, title=f"new{step}", due_at=rng.choice(days), priority=rng.choice(list(PRIORITY_RANK)))
        task = rng.choice(originals)
        client.patch(user.task_url(task["id"]), json={"description": f"edit {step}"}, headers=user.headers)

    walked = [task["id"] for task in _walk(client, user, write_elsewhere, sort=sort, status=status, limit=4)]

    wanted = [task for task in originals if status == "all" or not task["completed"]]
    expected = _expected(wanted, sort)
    assert len(walked) == len(set(walked))
    assert [task_id for task_id in walked if task_id in set(expected)] == expected
    final = list(_walk(client, user, lambda: None, sort=sort, status=status, limit=100))
    assert [task["id"] for task in final] == _expected(final, sort)


def test_due_date_orders_put_undated_tasks_last_and_break_ties_by_id(
    client: TestClient, create_task: CreateTask, alice: User
) -> None:
    late = create_task(alice, title="late", due_at="2026-12-09T00:00:00Z")
    undated = sorted([create_task(alice, title=f"undated {index}")["id"] for index in range(2)])
    same = sorted(
        [create_task(alice, title=f"same {index}", due_at="2026-12-01T00:00:00Z")["id"] for index in range(2)]
    )

    def order(sort: str) -> list[str]:
        return [
            task["id"]
            for task in client.get(alice.tasks_url, params={"sort": sort}, headers=alice.headers).json()["items"]
        ]

    assert order("due_at") == [*same, late["id"], *undated]
    assert order("-due_at") == [late["id"], *same[::-1], *undated[::-1]]


def test_a_due_window_pages_only_the_dated_tasks(client: TestClient, create_task: CreateTask, alice: User) -> None:
    dated = [
        create_task(alice, title=f"d{index}", due_at=f"2026-12-0{index + 1}T00:00:00Z")["id"] for index in range(5)
    ]
    create_task(alice, title="undated")

    walked = [
        task["id"]
        for task in _walk(client, alice, lambda: None, sort="-due_at", due_after="2026-01-01T00:00:00Z", limit=2)
    ]

    assert walked == dated[::-1]


# The tags overview.


def test_tags_overview_counts_each_tag_once_whatever_its_case(
    client: TestClient, create_task: CreateTask, alice: User, bob: User
) -> None:
    create_task(alice, tags=["Work", "home"])
    create_task(alice, tags=["work"])
    create_task(alice, tags=["work", "Garden"], completed=True)
    create_task(alice, tags=["Home"])
    create_task(alice, tags=["HOME"])
    create_task(alice, tags=["apple"])
    create_task(bob, tags=["work", "secret"])

    response = client.get(f"/api/v1/users/{alice.id}/tags", headers=alice.headers)

    assert response.status_code == 200
    TagSummary.model_validate(response.json())
    assert response.json() == {
        "items": [
            {"tag": "HOME", "count": 3},  # three spellings once each: the first in code point order shown
            {"tag": "work", "count": 3},
            {"tag": "apple", "count": 1},
            {"tag": "Garden", "count": 1},
        ]
    }


def test_tags_overview_follows_edits_and_deletes(client: TestClient, create_task: CreateTask, alice: User) -> None:
    task = create_task(alice, tags=["work"])
    other = create_task(alice, tags=["work"])
    client.patch(alice.task_url(task["id"]), json={"tags": ["home"]}, headers=alice.headers)
    client.delete(alice.task_url(other["id"]), headers=alice.headers)

    assert client.get(f"/api/v1/users/{alice.id}/tags", headers=alice.headers).json() == {
        "items": [{"tag": "home", "count": 1}]
    }


def test_tags_overview_of_another_user_is_403(client: TestClient, alice: User, bob: User) -> None:
    response = client.get(f"/api/v1/users/{bob.id}/tags", headers=alice.headers)

    assert response.status_code == 403


def test_due_times_keep_microseconds_through_filters(client: TestClient, create_task: CreateTask, alice: User) -> None:
    instant = datetime(2026, 12, 1, 12, 0, 0, 500, tzinfo=UTC)
    create_task(alice, title="precise", due_at=instant.isoformat())

    assert _titles(client, alice, due_after=instant.isoformat().replace("+00:00", "Z")) == ["precise"]
    later = (instant + timedelta(microseconds=1)).isoformat()
    assert _titles(client, alice, due_after=later) == []
    assert _titles(client, alice, due_before=later) == ["precise"]
    assert uuid.UUID(client.get(alice.tasks_url, headers=alice.headers).json()["items"][0]["id"]).version == 7
