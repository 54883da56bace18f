"""No secret anywhere: with a recognisable secret and faults on (5xx, drops, early expiry, a kill), grep every
log line (JSON and console), the results, the journal's bytes (and its -wal after a SIGKILL), and the text of
every exception for the secret, any signature-shaped value, every upload token the emulator issued, and any
URL query string. Zero hits."""

from __future__ import annotations

import re
import signal
import subprocess
import traceback
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from relcommon import cli_cmd, cli_env, photo_manifest, results, run_cli, wait_for

from pipeline import FatalApiError, ingest
from pipeline.config import Credentials
from pipeline.emulator import Emulator, EmulatorConfig, Faults

ACCESS = "AK-RELIABILITY"
SECRET = "SeCrEt-RELIABILITY-7f3a9c1e5b2d4680-do-not-leak"
CONFIG = EmulatorConfig(
    rate=0, confirm_rate=0, credentials=(Credentials(ACCESS, SECRET),),
    faults=Faults(error_rate=0.10, drop_rate=0.05, early_expiry_rate=0.05, latency=0.01, seed=11),
)
SIGNATURE_LIKE = re.compile(r"[A-Za-z0-9+/]{43}=")
"""A base64 HMAC-SHA256 (the x-ncp-apigw-signature-v2 header's value)."""
QUERY = re.compile(r"\?[A-Za-z][A-Za-z0-9_.%-]*=")
"""A URL query string with a parameter (a redacted one shows as ``?<redacted>``)."""


def _leaks(text: str, tokens: list[str], *, binary: bool = False) -> list[str]:
    """What ``text`` leaks. In ``binary`` files (SQLite, Parquet) base64-shaped runs occur naturally (Arrow's
    schema metadata), so signatures are looked for in the text sources only (logs, results as CSV, details)."""
    found = []
    if SECRET in text:
        found.append("secret")
    patterns = ((QUERY, "query string"),) if binary else ((SIGNATURE_LIKE, "signature"), (QUERY, "query string"))
    for pattern, name in patterns:
        found += [f"{name}: {m.group(0)[:80]}" for m in pattern.finditer(text)]
    for needle in ("X-Amz-Signature", "X-Amz-Credential", "x-ncp-apigw-signature"):
        if needle.lower() in text.lower():
            found.append(needle)
    found += [f"token {t[:8]}..." for t in tokens if t in text]
    return found


def _files_text(*paths: Path) -> str:
    """Every file's bytes decoded leniently (the journal and its WAL, the results as raw bytes)."""
    return "\n".join(p.read_bytes().decode("latin-1") for p in paths if p.exists())


@pytest.mark.slow  # real time (seconds of it): the reliability tier
@pytest.mark.parametrize("emulator_thread", [CONFIG], indirect=True)
def test_no_secret_signature_token_or_query_anywhere(emulator_thread: Emulator, tmp_path: Path) -> None:
    emu = emulator_thread
    env = cli_env(ACCESS, SECRET, home=tmp_path)
    texts: dict[str, str] = {}

    # 1. A JSON-logged run with faults, SIGKILLed mid-run: the WAL it leaves behind is grepped too.
    manifest = photo_manifest(tmp_path, 80)
    cmd = cli_cmd(emu, manifest, tmp_path, "--concurrency", "8")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: emu.counters.snapshot(arrivals=False)["puts_ok"] >= 20, 60)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate()
    texts["killed run logs"] = out + err
    assert (tmp_path / "j.sqlite-wal").exists()  # the kill left a WAL behind: it is grepped too
    binaries: dict[str, str] = {}
    binaries["journal after kill"] = _files_text(*(tmp_path / f"j.sqlite{s}" for s in ("", "-wal", "-shm")))

    # 2. The same run resumed, to the end.
    done = run_cli(cmd, env, timeout=180)
    texts["resumed run logs"] = done.stdout + done.stderr
    assert done.returncode in (0, 1), done.stderr[-2000:]

    # 3. Console logs, every URL expiring early: every row fails with the PUT's error text in its detail.
    emu.faults.early_expiry_rate = 1.0
    second = tmp_path / "second"
    second.mkdir()
    small = photo_manifest(second, 5)
    cmd2 = cli_cmd(emu, small, second, "--concurrency", "2")
    cmd2[cmd2.index("--log-format") + 1] = "console"
    failing = run_cli(cmd2, env, timeout=120)
    assert failing.returncode == 1, failing.stderr[-2000:]
    assert {r["reason"] for r in results(second / "results.parquet")} == {"upload_failed"}
    texts["failing run logs"] = failing.stdout + failing.stderr
    emu.faults.early_expiry_rate = 0.05

    for where in (tmp_path, second):
        texts[f"results {where.name}"] = pq.read_table(where / "results.parquet").to_pandas().to_csv()
        binaries[f"results file {where.name}"] = _files_text(where / "results.parquet")
        binaries[f"journal {where.name}"] = _files_text(*(where / f"j.sqlite{s}" for s in ("", "-wal", "-shm")))

    counters = emu.counters.snapshot(arrivals=False)
    assert counters["faults"].get("errors", 0) and counters["faults"].get("dropped", 0)
    tokens = list(emu.issued_by_token)
    assert len(tokens) > 80
    leaks = {where: found for where, text in texts.items() if (found := _leaks(text, tokens))}
    leaks |= {where: found for where, text in binaries.items() if (found := _leaks(text, tokens, binary=True))}
    assert leaks == {}


@pytest.mark.parametrize("emulator_thread", [CONFIG], indirect=True)
def test_no_secret_in_exceptions(emulator_thread: Emulator, tmp_path: Path) -> None:
    """The Python API raises ``FatalApiError``: its text, repr, traceback and summary carry no secret."""
    emu = emulator_thread
    emu.faults.error_rate = emu.faults.drop_rate = 0.0
    manifest = photo_manifest(tmp_path, 3)
    texts = []
    for workspace, creds in (("no-such-workspace", Credentials(ACCESS, SECRET)),
                             (emu.workspace, Credentials(ACCESS, SECRET + "-but-wrong"))):
        with pytest.raises(FatalApiError) as info:
            ingest(str(manifest), workspace=workspace, endpoint=emu.base_url, credentials=creds,
                   out=tmp_path / f"{workspace}.results.parquet", journal=tmp_path / f"{workspace}.sqlite",
                   rate=0, confirm_rate=0, progress=False)
        exc = info.value
        texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc)), repr(exc.summary),
                  repr(getattr(exc, "__cause__", None)), repr(getattr(exc, "__context__", None))]
    text = "\n".join(texts)
    assert SECRET not in text
    assert _leaks(text, list(emu.issued_by_token)) == []


def test_the_leak_detector_detects() -> None:
    """The greps above would see a leak (so their zero hits mean something)."""
    token = "ab" * 32
    url = f"http://127.0.0.1:1/_storage/b/k.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature={token}"
    assert _leaks(f"detail: {SECRET}", []) == ["secret"]
    assert "x-ncp-apigw-signature" in _leaks('{"x-ncp-apigw-signature-v2": "abc"}', [])
    assert any(f.startswith("signature") for f in _leaks("sig=" + "Ab1+" * 10 + "xyz=", []))
    assert any(f.startswith("query string") for f in _leaks(url.replace("X-Amz-", "Y"), []))
    assert any(f.startswith("token") for f in _leaks(f"...{token}...", [token]))
    assert _leaks("PUT http://127.0.0.1:1/_storage/b/k.jpg?<redacted>: HTTP 403", [token]) == []
