"""Parsing manifest cells into sources: local paths answer as ``pipeline.manifest`` always did; URLs,
remote roots, and the problems (``outside_root``, ``unsupported_source``, ...). Pure: no network."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.fetch import Problem, SourceParser, SourceRef, parse_source
from pipeline.fetch.refs import root_location, root_problem


def _reason(answer: SourceRef | Problem) -> str | None:
    return answer.reason if isinstance(answer, Problem) else None


def test_local_paths_join_the_base_or_the_root(tmp_path: Path) -> None:
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    absolute = tmp_path / "photos" / "abs.jpg"
    base = str(tmp_path / "manifests")
    assert parse_source("sub/a.jpg", base=base, root=None) == SourceRef("file", "", f"{base}/sub/a.jpg")
    assert parse_source(str(absolute), base=base, root=None) == SourceRef("file", "", str(absolute))
    root = str(tmp_path / "photos")
    assert parse_source("sub/a.jpg", base=base, root=root) == SourceRef("file", "", f"{root}/sub/a.jpg")
    assert parse_source(str(absolute), base=base, root=root) == SourceRef("file", "", str(absolute))
    assert parse_source(f"file://{absolute}", base=base, root=root) == SourceRef("file", "", str(absolute))
    assert parse_source("file:///tmp/a%20b.jpg", base=None, root=None) == SourceRef("file", "", "/tmp/a b.jpg")


def test_escapes_from_a_local_root_through_dots_and_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret.jpg").write_bytes(b"x")
    (root / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    (root / "inside.jpg").write_bytes(b"y")
    (root / "ok_link.jpg").symlink_to(root / "inside.jpg")
    (root / "dirlink").symlink_to(tmp_path)
    parser = SourceParser(base=None, root=str(root))
    cells = ["../secret.jpg", "link.jpg", "/etc/passwd", "sub/../inside.jpg", "ok_link.jpg", "dirlink/secret.jpg",
             "sub/..", "s3://bucket/a.jpg", f"file://{tmp_path}/secret.jpg"]
    answers = [parser(cell) for cell in cells]
    assert [_reason(a) for a in answers] == ["outside_root", "outside_root", "outside_root", None, None,
                                              "outside_root", None, "outside_root", "outside_root"]
    link = answers[1]
    assert isinstance(link, Problem) and f"outside --root {root}" in link.detail
    assert str(tmp_path / "secret.jpg") in link.detail
    assert answers[3] == answers[4] == SourceRef("file", "", str(root / "inside.jpg"))  # the checked real path


def test_empty_nul_and_unknown_schemes() -> None:
    parser = SourceParser(base="/data", root=None)
    assert [_reason(parser(c)) for c in [None, "", "   ", "a\x00b.jpg"]] == ["missing_path"] * 3 + ["invalid_path"]
    for cell in ["ftp://host/a.jpg", "azure://c/a.jpg", "hdfs://nn/a.jpg"]:
        assert _reason(parser(cell)) == "unsupported_source"
    assert _reason(parser("file://otherhost/a.jpg")) == "unsupported_source"
    assert _reason(parser("https://user:pw@host/a.jpg")) == "unsupported_source"
    assert parser("c:odd name.jpg") == SourceRef("file", "", "/data/c:odd name.jpg")  # no "://": a file name


def test_urls_parse_into_store_and_key() -> None:
    parser = SourceParser(base=None, root=None)
    assert parser("s3://bkt/a/b c+d.jpg") == SourceRef("s3", "bkt", "a/b c+d.jpg")
    assert parser("S3://bkt/k") == SourceRef("s3", "bkt", "k")
    assert parser("gs://bkt/k.png") == SourceRef("gs", "bkt", "k.png")
    ref = parser("https://cdn.example:8443/p/x.jpg?X-Amz-Signature=abc#frag")
    assert ref == SourceRef("https", "cdn.example:8443", "/p/x.jpg?X-Amz-Signature=abc")
    assert ref.display == "https://cdn.example:8443/p/x.jpg" and ref.store == "https://cdn.example:8443"
    assert [_reason(parser(c)) for c in ["s3://", "s3://bkt", "s3://bkt/", "http:///x"]] == ["invalid_path"] * 4


def test_remote_roots_join_relative_cells_and_confine_everything() -> None:
    parser = SourceParser(base="/ignored", root="s3://bkt/archive/2024")
    assert parser("a.jpg") == SourceRef("s3", "bkt", "archive/2024/a.jpg")
    assert parser("x/../b.jpg") == SourceRef("s3", "bkt", "archive/2024/b.jpg")
    assert parser("s3://bkt/archive/2024/c.jpg") == SourceRef("s3", "bkt", "archive/2024/c.jpg")
    refused = ["../a.jpg", "../../../../etc", "s3://bkt/archive/2025/a.jpg", "s3://bkt/archive/2024/../x.jpg",
               "s3://other/archive/2024/a.jpg", "/etc/passwd", "https://bkt/archive/2024/a.jpg"]
    assert [_reason(parser(c)) for c in refused] == ["outside_root"] * len(refused)
    web = SourceParser(base=None, root="https://h/photos/")
    assert web("a b.jpg?sig=1") == SourceRef("https", "h", "/photos/a b.jpg?sig=1")
    assert _reason(web("../x.jpg")) == "outside_root"


def test_a_remote_base_without_root_joins_but_does_not_confine() -> None:
    parser = SourceParser(base="gs://bkt/manifests/", root=None)
    assert parser("img/a.jpg") == SourceRef("gs", "bkt", "manifests/img/a.jpg")
    assert parser("../img/a.jpg") == SourceRef("gs", "bkt", "img/a.jpg")
    assert _reason(parser("../../a.jpg")) == "invalid_path"  # above the bucket: no such key can exist
    assert parser("s3://x/y.jpg") == SourceRef("s3", "x", "y.jpg")


def test_a_remote_manifest_never_names_local_files() -> None:
    """A manifest read from a URL (its base is remote) stays remote: absolute paths and file:// are refused
    with a sentence, relative cells (even climbing) join its URL folder and never reach the disk."""
    for base in ("https://h/dir/", "gs://bkt/manifests/"):
        parser = SourceParser(base=base, root=None)
        for cell in ("/etc/passwd", "file:///etc/passwd", "file://localhost/home/u/a.jpg"):
            answer = parser(cell)
            assert isinstance(answer, Problem) and answer.reason == "outside_root", (base, cell)
            assert "local file" in answer.detail and base in answer.detail
        for cell in ("../x.jpg", "./a/../../x.jpg", "../../../../etc/passwd"):
            answer = parser(cell)
            assert not (isinstance(answer, SourceRef) and answer.is_local), (base, cell)
    web = SourceParser(base="https://h/dir/", root=None)
    assert web("../x.jpg") == SourceRef("https", "h", "/x.jpg")
    # A local root chosen by the user still reads local files (the base is then the root, not the URL).
    assert SourceParser(base="https://h/dir/", root="/")("/etc/hosts") == SourceRef("file", "", "/etc/hosts")


@given(st.text(alphabet="ab./", max_size=12))
def test_no_relative_cell_escapes_a_remote_root(cell: str) -> None:
    answer = parse_source(cell, base=None, root="s3://bkt/r")
    if isinstance(answer, SourceRef):
        assert answer.bucket == "bkt" and (answer.key == "r" or answer.key.startswith("r/"))
        assert ".." not in answer.key.split("/")


@pytest.mark.parametrize("root", ["s3://bkt/r/", "https://h/r", None])
@given(cell=st.text(max_size=30))
def test_parsing_never_raises(root: str | None, cell: str) -> None:
    assert isinstance(parse_source(cell, base="/base", root=root), SourceRef | Problem)


def test_a_root_url_stays_text_and_a_folder_or_file_url_is_a_path() -> None:
    for url in ["s3://bkt/archive//2024/", "gs://b", "https://h:8443/p", "ftp://h/p", "file://elsewhere/p"]:
        assert root_location(url) == url  # as written: Path would fold "//" and lose the scheme's slashes
    assert root_location("photos/2024") == Path("photos/2024")
    assert root_location(Path("/data")) == Path("/data")
    assert root_location("file:///data/a%20b") == Path("/data/a b")


@pytest.mark.parametrize(("root", "words"), [
    ("s3://", "needs a bucket"), ("gs:///photos", "needs a bucket"), ("https:///photos", "needs a host"),
    ("ftp://host/photos", "ftp:// scheme is not read"), ("file://elsewhere/p", "folder on this machine"),
    ("https://user:pw@host/p", "credentials"), ("https://host/p?X-Amz-Signature=abc", "query string"),
    ("s3://bkt/p?versionId=1", "cannot hold"), ("http://host:99999/p", "not a valid http:// URL"),
])
def test_malformed_remote_roots_are_named_without_repeating_secrets(root: str, words: str) -> None:
    problem = root_problem(root)
    assert problem is not None and words in problem
    assert "pw" not in problem and "abc" not in problem


@pytest.mark.parametrize("root", ["s3://bkt", "s3://bkt/a/b/", "gs://bkt/p", "https://h:8443/p/", "http://h"])
def test_well_formed_remote_roots_have_no_problem(root: str) -> None:
    assert root_problem(root) is None
