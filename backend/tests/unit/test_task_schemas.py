"""Input validation rules of the task schemas, independent of HTTP."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from src.models.task import TaskCreate, TaskPatch


def test_title_is_trimmed() -> None:
    assert TaskCreate.model_validate({"title": "  padded \t"}).title == "padded"


def test_title_of_exactly_200_characters_after_trimming_is_accepted() -> None:
    assert len(TaskCreate.model_validate({"title": " " + "x" * 200 + " "}).title) == 200


@pytest.mark.parametrize("title", ["a\rb", "a\x7fb", "a\u0085b", "\ud800", "a\u2029b"])
def test_title_rejects_control_and_unstorable_characters(title: str) -> None:
    with pytest.raises(ValidationError) as error:
        TaskCreate.model_validate({"title": title})
    assert error.value.errors()[0]["loc"] == ("title",)


def test_description_allows_tab_and_newline_only() -> None:
    assert TaskCreate.model_validate({"title": "t", "description": "a\tb\nc"}).description == "a\tb\nc"
    with pytest.raises(ValidationError):
        TaskCreate.model_validate({"title": "t", "description": "a\rb"})


def test_patch_tracks_which_fields_were_sent() -> None:
    assert TaskPatch.model_validate({"description": None}).model_dump(exclude_unset=True) == {"description": None}
    assert TaskPatch.model_validate({}).model_dump(exclude_unset=True) == {}
