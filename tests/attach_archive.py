"""The ~300-row, ~40-person archive of the attach tests (issue 13), and the checks they share.

Import as ``from attach_archive import ...`` (``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from helpers import write_manifest
from persons_helpers import persons_path, signed_call, thumb, uploaded_keys

from pipeline.emulator import Emulator
from pipeline.samples import make_jpeg

__all__ = ["BIG", "EXISTING", "Archive", "check_attached", "make_archive", "seed"]

BIG = "Big Family"
"""The person with 110 photos: 100 attached, 10 ``person_full``."""
EXISTING = "Already There"
"""A name the workspace holds before the run (with ``EXISTING_HAS`` thumbnails)."""
EXISTING_HAS = 2


@dataclass(frozen=True)
class Archive:
    """The manifest, its rows (dicts as written) and, per row id, its target (``name:...`` / ``id:...``)."""

    manifest: Path
    rows: list[dict[str, Any]]


async def seed(emu: Emulator) -> str:
    """``EXISTING`` with ``EXISTING_HAS`` thumbnails, and an anonymous person with one; returns the latter's id."""
    async with aiohttp.ClientSession() as http:
        keys = await uploaded_keys(http, emu, 3, prefix="seed")
        made = await signed_call(http, emu, "POST", persons_path(emu.workspace),
                                 {"name": EXISTING, "thumbnails": [thumb(keys[0], True), thumb(keys[1])]})
        assert made.status == 200
        other = await signed_call(http, emu, "POST", persons_path(emu.workspace),
                                  {"thumbnails": [thumb(keys[2], True)]})
        return str(other.body["result"]["id"])


def make_archive(folder: Path, existing_id: str, *, new_names: int = 36, seed: int = 7) -> Archive:
    """300 rows: ``BIG`` x110 (its 51st row marked primary), ``new_names`` new persons of 4-5 rows (every
    third one's third row marked primary), ``EXISTING`` x3 (its second row marked), 3 rows for the person
    ``existing_id`` by id, and the rest without a person; shuffled so each person is spread through the file."""
    owners: list[tuple[str, str]] = [("name", BIG)] * 110
    owners += [("name", EXISTING)] * 3 + [("id", existing_id)] * 3
    for n in range(new_names):
        owners += [("name", f"Person {n:02d}")] * (4 + n % 2)
    owners += [("none", "")] * (300 - len(owners))
    random.Random(seed).shuffle(owners)
    seen: Counter[tuple[str, str]] = Counter()
    rows = []
    folder.mkdir(parents=True, exist_ok=True)
    for i, (kind, who) in enumerate(owners):
        make_jpeg(folder / f"p{i:03d}.jpg", 300, 300, seed=1000 + i, quality=70)
        seen[(kind, who)] += 1
        nth = seen[(kind, who)]
        marked = ((who == BIG and nth == 51) or (who == EXISTING and nth == 2)
                  or (who.startswith("Person") and int(who[-2:]) % 3 == 0 and nth == 3))
        rows.append({"id": f"r{i:03d}", "path": f"p{i:03d}.jpg", "person": who if kind == "name" else "",
                     "person_id": who if kind == "id" else "", "primary": "yes" if marked else ""})
    return Archive(write_manifest(folder / "manifest.csv", rows), rows)


def check_attached(emu: Emulator, archive: Archive, results: list[dict[str, Any]], existing_id: str) -> None:
    """Every person exists once; each key sits on its row's person; one primary each, the marked one where
    marked (else, for a person the run created, its first row); ``BIG``: 100 attached and 10 rejected
    ``person_full`` (before their upload, or, uploaded by an earlier run without ``--attach``, keeping their key)."""
    by_id = {r["id"]: r for r in results}
    persons = list(emu.persons.values())
    names = Counter(p.name for p in persons)
    wanted = {r["person"] for r in archive.rows if r["person"]}
    assert all(names[n] == 1 for n in wanted), names
    key_owner = {k: p for p in persons for k in p.keys}
    assert len(key_owner) == sum(len(p.keys) for p in persons)  # a key on one person only
    firsts: dict[str, str] = {}
    marked: dict[str, str] = {}
    for row in archive.rows:
        got = by_id[row["id"]]
        who = row["person"] or row["person_id"]
        if not who:
            assert got["status"] == "uploaded" and got["person_id"] is None, got
            continue
        if got["status"] == "rejected" and row["person"] == BIG:
            assert got["reason"] == "person_full", got
            continue
        assert got["status"] == "attached", got
        person = key_owner[got["thumbnail_key"]]
        assert str(person.id) == got["person_id"]
        assert (person.name == row["person"]) if row["person"] else (str(person.id) == row["person_id"])
        firsts.setdefault(who, got["thumbnail_key"])
        if row["primary"]:
            marked[who] = got["thumbnail_key"]
    for who, key in marked.items():
        assert key_owner[key].primary_key == key, who
    for who, key in firsts.items():
        if who not in marked and who not in (EXISTING, existing_id):
            assert key_owner[key].primary_key == key, who
    big = [by_id[r["id"]] for r in archive.rows if r["person"] == BIG]
    assert Counter(r["status"] for r in big) == {"attached": 100, "rejected": 10}
    assert len(next(p for p in persons if p.name == BIG).keys) == 100
    assert len(next(p for p in persons if p.name == EXISTING).keys) == EXISTING_HAS + 3
    assert len(emu.persons[int(existing_id)].keys) == 1 + 3
