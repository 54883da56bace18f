"""Upload file names: unique per row, safe, extension of the uploaded format."""

from __future__ import annotations

from pathlib import Path

from pipeline.fetch.refs import SourceRef
from pipeline.models import Prepared, Row
from pipeline.naming import upload_name


def _prepared(ext: str = ".jpg") -> Prepared:
    return Prepared(b"", "JPEG", "image/jpeg", ext, 300, 300, ("converted",), 1, "0" * 64)



def _file(path: str) -> SourceRef:
    return SourceRef("file", "", path)

def test_default_name_is_stem_plus_key_with_the_output_extension() -> None:
    row = Row(7, "p-007", "photos/IMG 0001.HEIC", _file("/x/photos/IMG 0001.HEIC"))
    assert upload_name(row, _prepared()) == "IMG_0001-p-007.jpg"


def test_unicode_and_long_names_are_made_safe_and_short() -> None:
    row = Row(3, "3", "사진/" + "가" * 300 + ".png", _file("/x.png"))
    name = upload_name(row, _prepared(".png"))
    assert name == "image-3.png"
    long_row = Row(4, "k" * 500, "a" * 500 + ".jpg", _file("/y.jpg"))
    assert len(upload_name(long_row, _prepared())) <= 140


def test_override_keeps_the_users_stem_but_not_directories() -> None:
    row = Row(1, "1", "a.png", _file("/a.png"), file_name="../../etc/jiho0.png")
    assert upload_name(row, _prepared(".jpg")) == "jiho0.jpg"


def test_default_results_and_journal_paths_keep_the_whole_stem() -> None:
    from pipeline.config import ApiSettings, Credentials, Settings
    from pipeline.journal.location import default_journal
    from pipeline.runner import run_paths

    api = ApiSettings(workspace="w", credentials=Credentials("a", "b"))
    journal = default_journal(api.endpoint, "w")
    paths = run_paths(Settings(api=api), Path("/d/photos.2024-05.csv"))
    assert (paths.out, paths.journal) == (Path("/d/photos.2024-05.results.parquet"), journal)
    # The journal follows the workspace, never --out: changing --out never re-uploads.
    paths = run_paths(Settings(api=api, out=Path("/r/x.v2.csv")), Path("/d/m.csv"))
    assert paths.journal == journal
    dry = run_paths(Settings(api=api, dry_run=True), Path("/d/m.csv.gz"))
    assert (dry.out, dry.journal) == (Path("/d/m.dryrun.parquet"), journal)
