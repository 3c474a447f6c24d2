"""Names and labels of jobs and studies: their limits, and the ?label= / ?name= filters of the lists.

Labels are string key/values for finding things again (team, project, sweep), bounded as
Kubernetes bounds its labels, so a label filter stays one cheap comparison per row:
keys of 1-63 characters from ``[A-Za-z0-9._/-]``, values of up to 200 printable characters,
at most 32 labels. They are metadata: not part of the training spec (GET /v1/jobs/{id}/spec
does not show them and a rebuilt model never sees them).
"""
import re
from typing import Annotated

from fastapi import Query
from pydantic import Field, StringConstraints
from sqlalchemy import ColumnElement, false

from app.errors import ApiError

MAX_LABELS = 32
KEY_PATTERN = r"^[A-Za-z0-9._/-]{1,63}$"

Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
LabelKey = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
LabelValue = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
Labels = Annotated[dict[LabelKey, LabelValue], Field(
    max_length=MAX_LABELS, description=f"string key/values (at most {MAX_LABELS}; keys: 1-63 of A-Z a-z 0-9 . _ / -, "
                                       "values: up to 200 characters) to find it again with ?label=key:value")]

# The list routes' filters (GET /v1/jobs, GET /v1/studies).
LabelQuery = Annotated[list[str] | None, Query(
    max_length=MAX_LABELS, description="key:value; repeat it for several labels, all of which must match")]
NameQuery = Annotated[str | None, Query(min_length=1, max_length=200, description="the exact name")]
NamePrefixQuery = Annotated[str | None, Query(min_length=1, max_length=200,
                                              description="names that start with this")]


def parse_filters(label: list[str] | None) -> dict[str, str]:
    """?label=team:vision&label=stage:prod -> {"team": "vision", "stage": "prod"}; a 422 on ``label``
    for one that is not key:value. One key asked twice with two values matches nothing, as it should."""
    wanted: dict[str, str | None] = {}
    for item in label or []:
        key, sep, value = item.partition(":")
        if not sep or not re.fullmatch(KEY_PATTERN, key) or len(value) > 200:
            raise ApiError(422, f"label filters are key:value (a key of 1-63 of A-Z a-z 0-9 . _ / -, "
                                f"a value of up to 200 characters), got {item[:80]!r}", "label")
        # The same key with two different values cannot both hold: None matches no row.
        wanted[key] = value if wanted.get(key, value) == value else None
    return wanted  # type: ignore[return-value]


def conditions(*, labels_column, name_column, labels: dict[str, str | None], name: str | None,
               name_prefix: str | None) -> list[ColumnElement]:
    """The WHERE terms of the filters, the same SQL shape on SQLite (json_extract) and PostgreSQL (->>)."""
    where: list[ColumnElement] = []
    for key, value in labels.items():
        where.append(labels_column[key].as_string() == value if value is not None else false())
    if name is not None:
        where.append(name_column == name)
    if name_prefix is not None:
        where.append(name_column.startswith(name_prefix, autoescape=True))
    return where
