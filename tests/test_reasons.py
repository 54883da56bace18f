"""The reason registry holds every reason the code writes, docs/reference.md's table and the planner's set
together."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from pipeline import reasons
from pipeline.attach.models import REFUSAL_REASONS
from pipeline.images import REASONS
from pipeline.models import Status
from pipeline.runner.plan import FIXABLE_REASONS

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pipeline"
_CODE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")

# Calls that take a reason code, and the position of the code among their arguments.
_TAKES_REASON = {"Reject": 0, "Rejected": 0, "FetchRejected": 0, "Failure": 0, "Problem": 0, "Refused": 0,
                 "failed": 0, "RowRefusal": 1}
# Exception class attributes in errors.py that look like reasons but never reach a row: nothing reads an
# exception's ``reason`` (rows get theirs from client/rows.py's literals).
_NOT_ROW_REASONS = {"api_error", "rate_limited", "transient_error"}


def _code(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and _CODE.fullmatch(node.value):
        return node.value
    return None


def _names_reason(node: ast.AST) -> bool:
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
    return name == "reason" or name.endswith("_reason")


def _is_sentence(node: ast.AST) -> bool:
    if isinstance(node, ast.JoinedStr):
        return True
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and " " in node.value


def reason_literals(source: str) -> list[tuple[str, int, str]]:
    """``(code, line, call name or shape)`` for every string the source uses as a row reason: ``reason="x"``,
    the code argument of ``Reject``/``Rejected``/``FetchRejected``/``Failure``/``Problem``/``Refused``/
    ``RowRefusal``/``failed``, ``x.reason == "x"`` (or ``in``), ``reason = "x"`` / ``last_reason = "x"``, and
    ``("x", "a sentence")`` pairs (a reason with its detail) assigned, returned or given as a fallback (a pair
    inside a table of labels is not a reason)."""
    found: list[tuple[str, int, str]] = []
    tree = ast.parse(source)
    parent = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            at = _TAKES_REASON.get(name)
            if at is not None and len(node.args) > at and (code := _code(node.args[at])):
                found.append((code, node.lineno, name))
            found += [(code, node.lineno, "reason=") for kw in node.keywords
                      if kw.arg == "reason" and (code := _code(kw.value))]
        elif isinstance(node, ast.Compare) and _names_reason(node.left):
            for right in node.comparators:
                items = right.elts if isinstance(right, ast.Tuple | ast.Set | ast.List) else [right]
                found += [(code, node.lineno, "compare") for item in items if (code := _code(item))]
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_names_reason(t) for t in targets) and (code := _code(node.value)):
                found.append((code, node.lineno, "assign"))
        elif isinstance(node, ast.Tuple) and len(node.elts) == 2 and _is_sentence(node.elts[1]):
            up = parent.get(node)
            if isinstance(up, ast.Tuple) and isinstance(parent.get(up), ast.Return):  # ``return None, ("x", "...")``
                up = parent.get(up)
            if isinstance(up, ast.Assign | ast.AnnAssign | ast.Return | ast.BoolOp) and (code := _code(node.elts[0])):
                found.append((code, node.lineno, "pair"))
    return found


def _package_literals() -> list[tuple[str, str, int, str]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("pipeline/emulator/"):  # the service's stand-in, not the pipeline
            continue
        found += [(code, rel, line, how) for code, line, how in reason_literals(path.read_text(encoding="utf-8"))]
    return found


LITERALS = _package_literals()


def test_the_scan_finds_reasons_in_every_shape_the_code_writes_them() -> None:
    source = '''
Reject("a_one", "detail")
FetchRejected("a_two", f"{x} detail")
RowRefusal(row.key, "a_three", "detail")
RowResult(1, "k", Status.FAILED, reason="a_four")
if entry.reason == "a_five" or got.reason in ("a_six", "a_seven"):
    last_reason = "a_eight"
PAIR = ("a_nine", "the path cell is empty")
LABELS = (("new", "new rows to upload"), ("retry", "failed rows to retry"))
log.warning("results_not_written", reason="abandoned; the previous results file is unchanged")
for key in ("kind", "reason"):
    pass
'''
    found = {code for code, _, _ in reason_literals(source)}
    assert found == {f"a_{n}" for n in ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine")}


def test_the_scan_sees_the_reasons_the_package_writes() -> None:
    seen = {code for code, _, _, _ in LITERALS}
    # One from each part that writes reasons: manifest/fetch, images, client, attach, the run's end.
    assert {"missing_path", "fetch_failed", "too_small", "confirm_failed", "invalid_person", "not_reached"} <= seen


def test_every_reason_the_code_writes_is_registered() -> None:
    known = reasons.codes() | set(reasons.PERSON_REFUSALS) | _NOT_ROW_REASONS
    unknown = [f"{rel}:{line} {how} {code!r}" for code, rel, line, how in LITERALS if code not in known]
    assert not unknown, "reasons missing from pipeline/reasons.py REGISTRY: " + "; ".join(unknown)


def test_every_registered_reason_is_written_somewhere() -> None:
    seen = {code for code, _, _, _ in LITERALS}
    assert reasons.codes() <= seen, sorted(reasons.codes() - seen)


def test_person_refusals_are_what_the_persons_client_says() -> None:
    said = {code for code, _, _, how in LITERALS if how == "Refused"}
    assert said == set(reasons.PERSON_REFUSALS) == set(REFUSAL_REASONS)
    assert _NOT_ROW_REASONS.isdisjoint(reasons.codes())


def test_the_readme_table_is_the_registry() -> None:
    readme = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    section = readme.split("### Reason codes", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    table = {m[1]: m[2] for line in rows if (m := re.match(r"\| `([a-z_]+)` \| (\w+) \|", line))}
    assert table == {r.code: r.status for r in reasons.REGISTRY}  # every code, with the same status
    assert reasons.markdown_table() in readme  # and the same wording, in the same order


def test_the_sets_the_stages_check_derive_from_the_registry() -> None:
    assert {r.code for r in reasons.REGISTRY if r.fixable} == FIXABLE_REASONS
    assert set(REASONS) == {r.code for r in reasons.REGISTRY if r.image}
    from_images = {code for code, rel, _, how in LITERALS if rel.startswith("pipeline/images/") and how != "compare"}
    assert from_images == set(REASONS)


@pytest.mark.parametrize("record", reasons.REGISTRY, ids=lambda r: r.code)
def test_each_record_is_well_formed(record: reasons.Reason) -> None:
    assert _CODE.fullmatch(record.code)
    assert Status(record.status) in (Status.REJECTED, Status.FAILED, Status.PENDING)
    assert record.meaning and "\n" not in record.meaning
    assert reasons.meaning(record.code) == record.meaning
    assert not (record.fixable and record.status == "pending")  # pending rows are always worked on again


def test_the_registry_is_a_leaf() -> None:
    tree = ast.parse((PACKAGE / "reasons.py").read_text(encoding="utf-8"))
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m == "pipeline" or m.startswith("pipeline.")]
    assert reasons.meaning("no_such_reason") is None
