"""core.map_job_level on the real PostgreSQL: vendor job levels through the configured mapping."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.types.json import Jsonb

from turnover_signals.config import load_config
from turnover_signals.hris.job_levels import compile_job_level_mapping, job_level_mapping

pytestmark = pytest.mark.integration

DEFAULT_MAPPING = job_level_mapping(load_config(use_variable=False))
IC = "individual contributor"


def mapped(
    dsn: str, values: list[str | None], mapping=DEFAULT_MAPPING
) -> list[tuple[int | None, str | None]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select mapped.ordinal, mapped.label from unnest(%s::text[]) with ordinality as level (value, "
            "position) cross join lateral core.map_job_level(level.value, %s) as mapped order by "
            "level.position",
            (values, Jsonb(mapping)),
        ).fetchall()
    return [tuple(row) for row in rows]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("L3", (3, IC)),
        ("P4", (4, IC)),
        ("IC4", (4, IC)),
        ("ic-4", (4, IC)),
        ("M2", (6, "senior manager")),
        ("m1", (5, "manager")),
        ("Senior", (4, "senior")),
        (" SENIOR ", (4, "senior")),
        ("3", (3, None)),
        (" 03 ", (3, None)),
    ],
)
def test_the_default_mapping_gives_vendor_levels_their_ordinal_and_label(warehouse_dsn, value, expected):
    assert mapped(warehouse_dsn, [value]) == [expected]


@pytest.mark.parametrize("value", ["Wizard", "L3a", "xL3", "L", "3.0", "M9", "", "  ", "1234567890"])
def test_a_level_nothing_maps_to_an_integer_gets_no_ordinal(warehouse_dsn, value):
    assert mapped(warehouse_dsn, [value]) == [(None, None)]


def test_no_level_is_no_ordinal(warehouse_dsn):
    assert mapped(warehouse_dsn, [None]) == [(None, None)]


def test_exact_values_come_first_then_the_first_matching_pattern(warehouse_dsn):
    mapping = compile_job_level_mapping(
        {
            "values": {"l9": {"ordinal": 1, "label": "exception"}},
            "patterns": [
                {"pattern": "L(\\d)", "ordinal": "\\1", "label": "first \\1"},
                {"pattern": "L(\\d+)", "ordinal": 0, "label": "second"},
                # a group that is not a number gives no ordinal, whatever a later rule would say
                {"pattern": "G(\\w+)", "ordinal": "\\1"},
                {"pattern": "Gx", "ordinal": 3},
            ],
        }
    )
    assert mapped(warehouse_dsn, ["L9", "L7", "L12", "Gx", "G5"], mapping) == [
        (1, "exception"),
        (7, "first 7"),
        (0, "second"),
        (None, None),
        (5, None),
    ]
