"""Hostile inputs: a corpus of odd and malformed files and hostile manifests. No crash (exit 0/1/2, never a
traceback), every row its precise reason, and nothing outside ``--root`` is read or uploaded."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import write_manifest
from PIL import Image
from relcommon import cli_cmd, cli_env, events, journal_rows, results, run_cli, sha256

from pipeline.emulator import Emulator
from pipeline.images import lossless
from pipeline.samples import (
    adobe_rgb_like_profile,
    make_bomb_png,
    make_image,
    make_jpeg,
    make_oriented_jpeg,
    make_png,
    make_webp,
    texture,
)

UPLOADED = ("passthrough", "passthrough+stripped", "converted", "reoriented", "reoriented+lossless")
OUTSIDE_SIZE = (333, 317)
"""The planted outside file's size: no uploaded object may have it."""


def _palette_transparent(p: Path) -> None:
    img = texture(320, 300, seed=7).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    img.save(p, transparency=0)


def _animated_gif(p: Path) -> None:
    a, b = texture(320, 300, seed=8).convert("P"), texture(320, 300, seed=9).convert("P")
    a.save(p, save_all=True, append_images=[b], duration=100, loop=0)


def _build(base: Path) -> tuple[Path, Path, list[tuple[str, str]]]:
    """The corpus under ``base/root`` and a valid photo in ``base/outside``; returns (root, outside file,
    [(manifest path text, expected action or reason)])."""
    root, outside = base / "root", base / "outside"
    root.mkdir(parents=True)
    outside.mkdir()
    secret_photo = outside / "secret_photo.jpg"
    secret_photo.write_bytes(make_jpeg(None, *OUTSIDE_SIZE, seed=99, quality=70))
    expected: list[tuple[str, str]] = []

    def add(name: str, outcome: str, data: bytes | None = None, build: Callable[[Path], Any] | None = None) -> None:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if data is not None:
            p.write_bytes(data)
        if build is not None:
            build(p)
        expected.append((name, outcome))

    jpg = make_jpeg(None, 320, 300, seed=1, quality=70)
    png = make_png(None, 320, 300, seed=2)
    webp = make_webp(None, 320, 300, seed=3, quality=70)
    # Truncated at several points: inside the magic+header, inside the headers, inside the pixel data.
    add("trunc/jpg_3b.jpg", "corrupt", jpg[:3])
    add("trunc/jpg_100b.jpg", "corrupt", jpg[:100])
    add("trunc/jpg_half.jpg", "corrupt", jpg[: len(jpg) // 2])
    add("trunc/jpg_no_eoi.jpg", "corrupt", jpg[:-200])
    add("trunc/png_20b.png", "corrupt", png[:20])
    add("trunc/png_half.png", "corrupt", png[: len(png) // 2])
    add("trunc/webp_30b.webp", "corrupt", webp[:30])
    add("trunc/webp_half.webp", "corrupt", webp[: len(webp) // 2])
    add("empty.jpg", "empty_file", b"")
    add("empty.png", "empty_file", b"")
    add("notes.jpg", "unsupported_format", b"meeting notes, not a photo\n" * 20)
    add("page.png", "unsupported_format", b"<html><body>not an image</body></html>\n")
    add("noise.webp", "unsupported_format", os.urandom(4096))
    add("bomb.png", "too_many_pixels", make_bomb_png(None))
    add("bomb_wide.png", "too_many_pixels", make_bomb_png(None, 100_000, 2_000))
    add("line_1x100000.png", "too_small", build=lambda p: Image.new("L", (1, 100_000), 128).save(p))
    add("line_100000x1.png", "too_small", build=lambda p: Image.new("L", (100_000, 1), 128).save(p))
    add("tiny.jpg", "too_small", make_jpeg(None, 200, 180, seed=4))
    add("cmyk.jpg", "converted", make_jpeg(None, 320, 300, mode="CMYK", seed=5, quality=70))
    add("deep16.png", "converted", make_png(None, 320, 300, mode="I;16", seed=6))
    add("palette_transparent.png", "converted", build=_palette_transparent)
    add("animated.gif", "converted", build=_animated_gif)
    add("animated.webp", "converted", make_webp(None, 320, 300, animated=True, seed=10, quality=70))
    for o in range(1, 9):  # every EXIF orientation; each displays as 400x300
        data = make_oriented_jpeg(None, 400, 300, o, seed=20 + o)
        # Turned without re-encoding where libjpeg-turbo is and the turn is perfect (at 400x300: 2, 5 and 6).
        turned = "reoriented+lossless" if lossless.upright(data, o) is not None else "reoriented"
        add(f"orient/o{o}.jpg", "passthrough+stripped" if o == 1 else turned, data)
    add("adobe_rgb.jpg", "converted",
        make_jpeg(None, 320, 300, icc_profile=adobe_rgb_like_profile(), seed=30, quality=70))
    add("iphone.heic", "converted", make_image(None, 320, 300, "HEIF", quality=70, seed=31))
    add("old.tif", "converted", make_image(None, 320, 300, "TIFF", seed=32))
    add("old.bmp", "converted", make_image(None, 320, 300, "BMP", seed=33))
    add("사진_김철수.jpg", "passthrough", make_jpeg(None, 320, 300, seed=34, quality=70))
    add("фото 😀 (copy).png", "passthrough", make_png(None, 320, 300, seed=35))
    add("e\u0301te\u0301 nfd.webp", "passthrough", make_webp(None, 320, 300, seed=36, quality=70))
    add("L" * 230 + ".jpg", "passthrough", make_jpeg(None, 320, 300, seed=37, quality=70))
    add("여권사진" * 15 + ".jpg", "passthrough", make_jpeg(None, 320, 300, seed=38, quality=70))  # 180 bytes
    add("folder.jpg", "unreadable", build=lambda p: p.mkdir())
    add("folder.png/inner.png", "passthrough", make_png(None, 320, 300, seed=39))
    add("missing.jpg", "not_found")
    add("link_inside.jpg", "passthrough", build=lambda p: p.symlink_to(root / "사진_김철수.jpg"))
    add("link_outside.jpg", "outside_root", build=lambda p: p.symlink_to(secret_photo))
    add("link_dir/photo.jpg", "outside_root", build=lambda p: p.parent.rmdir() or p.parent.symlink_to(outside))
    add("dangling.jpg", "not_found", build=lambda p: p.symlink_to(root / "nowhere.jpg"))
    (root / "sub").mkdir()
    expected += [
        ("../outside/secret_photo.jpg", "outside_root"),
        ("sub/../../outside/secret_photo.jpg", "outside_root"),
        (str(secret_photo), "outside_root"),
        ("sub/../cmyk.jpg", "converted"),
        (str(root / "tiny.jpg"), "too_small"),
        ("", "missing_path"),
    ]
    return root, secret_photo, expected


def test_hostile_corpus(emulator_thread: Emulator, tmp_path: Path) -> None:
    emu = emulator_thread
    root, secret_photo, expected = _build(tmp_path / "corpus")
    assert len(expected) >= 40
    manifest = write_manifest(tmp_path / "hostile.csv",
                         [{"id": f"h{i}", "path": p, "note": n} for i, (p, n) in enumerate(expected)])
    cmd = cli_cmd(emu, manifest, tmp_path, "--root", str(root))
    run = run_cli(cmd, cli_env(emu.credentials.access_key, emu.credentials.secret_key), timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr + run.stdout
    events(run.stderr)  # every line is JSON

    rows = results(tmp_path / "results.parquet")
    assert len(rows) == len(expected)
    mismatches = []
    for row, (path, outcome) in zip(rows, expected, strict=False):
        got = row["action"] if row["status"] == "uploaded" else row["reason"]
        want_status = "uploaded" if outcome in UPLOADED else "rejected"
        if (row["status"], got) != (want_status, outcome) or not (row["detail"] or row["status"] == "uploaded"):
            mismatches.append((path[:60], outcome, row["status"], got, row["detail"]))
    assert mismatches == []

    # What was uploaded is what the results say, with the displayed size (orientation applied).
    uploaded = [(row, p) for row, (p, _) in zip(rows, expected, strict=False) if row["status"] == "uploaded"]
    assert len({row["thumbnail_key"] for row, _ in uploaded}) == len(uploaded) == len(emu.objects)
    for row, path in uploaded:
        obj = emu.objects[row["thumbnail_key"]]
        assert (obj.info.width, obj.info.height) == (row["width"], row["height"])
        assert obj.info.format in ("JPEG", "PNG", "WEBP")
        data = obj.read()
        assert data is not None
        with Image.open(io.BytesIO(data)) as img:
            assert getattr(img, "n_frames", 1) == 1, path  # animations become one still frame
            if path.startswith("orient/"):  # displayed upright: the red block is top-left, not elsewhere
                assert img.size == (400, 300), path
                rgb = img.convert("RGB")
                r, g, b = rgb.getpixel((20, 20))
                assert r > 180 and g < 90 and b < 90, (path, (r, g, b))
                assert rgb.getpixel((380, 280))[1] > 60 or rgb.getpixel((380, 280))[2] > 60, path
        if row["action"] == "passthrough":
            assert obj.sha256 == sha256((root / path).read_bytes()), path
    # The photo outside --root was never uploaded, whichever way it was reached.
    outside_sha = sha256(secret_photo.read_bytes())
    assert all(o.sha256 != outside_sha for o in emu.objects.values())
    assert all((o.info.width, o.info.height) != OUTSIDE_SIZE for o in emu.objects.values())
    # ... nor read: its rows carry no source hash.
    for row, (_, outcome) in zip(rows, expected, strict=False):
        if outcome == "outside_root":
            assert row["source_sha256"] is None and "outside --root" in row["detail"]
    journal = {j["key"]: j["status"] for j in journal_rows(tmp_path / "j.sqlite")}
    assert [journal[r["id"]] for r in rows] == [r["status"] for r in rows]


def _one_sentence_exit_2(run: Any, *needles: str) -> None:
    assert run.returncode == 2, run.stderr[-2000:]
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    make_jpeg(tmp_path / "a.jpg", 320, 300, seed=1, quality=70)
    return tmp_path / "a.jpg"


def _write_parquet(path: Path, columns: dict[str, list[Any]]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


@pytest.mark.parametrize(
    ("name", "content", "needles"),
    [
        ("no_path.csv", "id,photo\nr0,a.jpg\n", ("path",)),
        ("dup_ids.csv", "id,path\nr0,a.jpg\nr1,a.jpg\nr0,a.jpg\n", ("r0",)),
        ("empty_id.csv", "id,path\nr0,a.jpg\n,a.jpg\n", ("id",)),
        ("header_only_garbage.csv", "\x00\x01\x02garbage", ()),
        ("ragged.csv", "id,path\nr0,a.jpg\nr1\nr2,a.jpg,extra,cells\n", ()),
        ("dup_cols.csv", "id,path,path\nr0,a.jpg,a.jpg\n", ("path",)),
    ],
)
def test_hostile_manifest_refused_with_one_sentence(
    emulator_thread: Emulator, tmp_path: Path, photo: Path, name: str, content: str, needles: tuple[str, ...]
) -> None:
    emu = emulator_thread
    manifest = tmp_path / name
    manifest.write_text(content)
    run = run_cli(cli_cmd(emu, manifest, tmp_path), cli_env(emu.credentials.access_key, emu.credentials.secret_key),
                  timeout=60)
    _one_sentence_exit_2(run, *needles)
    assert emu.counters.snapshot(arrivals=False)["presign_calls"] == 0
    assert not (tmp_path / "results.parquet").exists()


def test_parquet_null_paths_and_duplicate_ids(emulator_thread: Emulator, tmp_path: Path, photo: Path) -> None:
    emu = emulator_thread
    env = cli_env(emu.credentials.access_key, emu.credentials.secret_key)
    nulls = _write_parquet(tmp_path / "nulls.parquet",
                           {"id": [1, 2, 3, 4], "path": ["a.jpg", None, "", "a.jpg"], "person": ["A", "B", "C", None]})
    run = run_cli(cli_cmd(emu, nulls, tmp_path), env, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = results(tmp_path / "results.parquet")
    assert [(r["status"], r["reason"]) for r in rows] == [
        ("uploaded", None), ("rejected", "missing_path"), ("rejected", "missing_path"), ("uploaded", None)]
    assert [r["person"] for r in rows] == ["A", "B", "C", None]
    assert len(emu.objects) == 2

    dups = _write_parquet(tmp_path / "dups.parquet", {"id": [7, 8, 7], "path": ["a.jpg", "a.jpg", "a.jpg"]})
    out2 = tmp_path / "second"
    out2.mkdir()
    run = run_cli(cli_cmd(emu, dups, out2), env, timeout=60)
    _one_sentence_exit_2(run, "7")
    assert len(emu.objects) == 2


def _big_cell(tmp_path: Path, photo: Path, size: int, *, column: str) -> Path:
    """A CSV whose middle row has a ``size``-byte cell in ``column``, written in chunks (never in memory)."""
    manifest = tmp_path / f"big_{column}.csv"
    chunk = b"x" * (1 << 20)
    with manifest.open("wb") as f:
        f.write(b"id,path,notes\nr0,a.jpg,small\n")
        f.write(b"r1,a.jpg," if column == "notes" else b"r1,")
        for _ in range(size // len(chunk)):
            f.write(chunk)
        f.write(b".jpg,big\n" if column == "path" else b"\n")
        f.write(b"r2,a.jpg,small\n")
    return manifest


def _big_cell_run(emu: Emulator, tmp_path: Path, photo: Path, size: int) -> None:
    env = cli_env(emu.credentials.access_key, emu.credentials.secret_key)
    for column in ("path", "notes"):
        out = tmp_path / column
        out.mkdir()
        manifest = _big_cell(tmp_path, photo, size, column=column)
        try:
            run = run_cli(cli_cmd(emu, manifest, out), env, timeout=300)
        finally:
            manifest.unlink()
        assert "Traceback" not in run.stderr + run.stdout
        assert run.returncode in (0, 2), run.stderr[-2000:]
        if run.returncode == 2:  # refused as a whole: one sentence naming the manifest, nothing uploaded
            lines = [line for line in run.stderr.splitlines() if line.strip()]
            assert len(lines) == 1 and manifest.name in lines[0], lines
            assert not (out / "results.parquet").exists()
            continue
        rows = results(out / "results.parquet")
        assert [r["id"] for r in rows] == ["r0", "r1", "r2"]
        assert rows[0]["status"] == rows[2]["status"] == "uploaded"
        if column == "path":  # a 20 MB file name cannot be opened: ENAMETOOLONG
            assert (rows[1]["status"], rows[1]["reason"]) == ("rejected", "unreadable")
        else:
            assert rows[1]["status"] == "uploaded" and len(rows[1]["notes"]) == size


def test_big_csv_cell_20mb(emulator_thread: Emulator, tmp_path: Path, photo: Path) -> None:
    _big_cell_run(emulator_thread, tmp_path, photo, 20 * (1 << 20))


@pytest.mark.slow
def test_big_csv_cell_200mb(emulator_thread: Emulator, tmp_path: Path, photo: Path) -> None:
    _big_cell_run(emulator_thread, tmp_path, photo, 200 * (1 << 20))


def test_unreadable_bytes_in_manifest_path(emulator_thread: Emulator, tmp_path: Path, photo: Path) -> None:
    """A path cell that is not UTF-8: refused whole (exit 2) or that row rejected; never a traceback."""
    emu = emulator_thread
    manifest = tmp_path / "latin1.csv"
    manifest.write_bytes(b"id,path\nr0,a.jpg\nr1,caf\xe9.jpg\n")
    run = run_cli(cli_cmd(emu, manifest, tmp_path), cli_env(emu.credentials.access_key, emu.credentials.secret_key),
                  timeout=60)
    assert "Traceback" not in run.stderr and run.returncode in (0, 2), run.stderr[-2000:]
    if run.returncode == 2:
        assert len([line for line in run.stderr.splitlines() if line.strip()]) == 1
    else:
        rows = results(tmp_path / "results.parquet")
        assert rows[0]["status"] == "uploaded" and rows[1]["status"] == "rejected"


def test_in_process_main_never_raises(tmp_path: Path, photo: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``pipeline.cli.main`` returns 2 for a manifest escaping nothing but malformed: no exception escapes."""
    from pipeline.cli import main

    monkeypatch.setenv("NCLOUD_ACCESS_KEY", "a")
    monkeypatch.setenv("NCLOUD_SECRET_KEY", "b")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1" + b"\0" * 64)
    assert main(["ingest", str(bad), "--workspace", "w", "--no-progress", "--endpoint", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len([x for x in err.splitlines() if x.strip()]) == 1

