"""The journal's schema: each version's DDL frozen as released, every upgrade path ending at the latest DDL,
and the journal's columns held to ``RESULT_FIELDS``."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from pipeline.journal import Journal
from pipeline.journal.schema import COLUMNS, DDL, SCHEMA_VERSION, create, ensure_schema
from pipeline.result_fields import RESULT_FIELDS

FIXTURES = Path(__file__).parent / "fixtures"

Schema = tuple[list[tuple[str, str, str, str]], dict[str, list[tuple[object, ...]]]]

RELEASED = {
    3: "25e42149d493726971a6814930966c447e103869f1616e122f1c682bec219b95",
    4: "f6ce9a3afdc1a25338aaebe041e5514f38dd6fdd5cad67a7eda7c1c1fd382566",
}
"""sha256 of each released version's DDL text that no fixture file holds: editing a released version fails."""


def schema_of(conn: sqlite3.Connection) -> Schema:
    """Every object's stored CREATE text and every table's columns (name, type, not null, default, key)."""
    master = [tuple(str(v) for v in r) for r in conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name")]
    tables = [name for (kind, name, _t, _s) in master if kind == "table"]
    info = {t: [tuple(r) for r in conn.execute(f"PRAGMA table_info({t})")] for t in tables}
    return master, info  # type: ignore[return-value]


def schema_at(path: Path) -> Schema:
    with closing(sqlite3.connect(path)) as conn:
        return schema_of(conn)


def latest() -> Schema:
    with closing(sqlite3.connect(":memory:")) as conn:
        create(conn)
        return schema_of(conn)


def digest(version: int) -> str:
    return hashlib.sha256("\n;\n".join(DDL[version]).encode()).hexdigest()


@pytest.mark.parametrize("version", [1, 2])
def test_the_frozen_ddl_is_what_the_released_code_wrote(version: int) -> None:
    """tests/fixtures/journal_v{1,2}.sqlite were written by those releases: their sqlite_master is the DDL."""
    with closing(sqlite3.connect(f"file:{FIXTURES / f'journal_v{version}.sqlite'}?mode=ro", uri=True)) as conn:
        stored = [sql for (sql,) in conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid")]
    assert stored == list(DDL[version])


def test_released_versions_stay_as_written() -> None:
    assert sorted(DDL) == list(range(1, SCHEMA_VERSION + 1))
    assert {v: digest(v) for v in RELEASED} == RELEASED


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_each_frozen_version_upgrades_to_the_latest_ddl(version: int) -> None:
    with closing(sqlite3.connect(":memory:", isolation_level=None)) as conn:
        create(conn, version)
        assert ensure_schema(conn) == version
        assert schema_of(conn) == latest()


@pytest.mark.parametrize("fixture", ["journal_v1.sqlite", "journal_v2.sqlite"])
def test_an_upgraded_journal_has_the_schema_of_a_new_one(tmp_path: Path, fixture: str) -> None:
    old, new = tmp_path / "old.sqlite", tmp_path / "new.sqlite"
    shutil.copy(FIXTURES / fixture, old)
    with Journal.open(old, workspace="ws" if "v1" in fixture else "demo") as j:
        assert j.migrated_from in (1, 2)
    with Journal.open(new, workspace="ws") as j:
        assert j.created
    assert schema_at(old) == schema_at(new) == latest()


_TYPES = {"text": "TEXT", "int32": "INTEGER", "int64": "INTEGER", "timestamp": "TEXT"}


def test_the_result_fields_are_the_latest_ddls_columns() -> None:
    """A field added to RESULT_FIELDS without a new schema version (its DDL and migration) fails here."""
    _master, info = latest()
    rows = {name: kind for (_cid, name, kind, *_rest) in info["rows"]}
    assert set(rows) == {"key", *COLUMNS, "legacy_idx", "updated_at"}
    assert {f.name: _TYPES[f.kind] for f in RESULT_FIELDS} == {name: rows[name] for name in COLUMNS}
