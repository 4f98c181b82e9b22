import json
import os
import stat

import pytest

from brain_cnn.reports.audit import read_records, record, record_event, verify
from brain_cnn.reports.worklist import audit_entry, worklist_csv, worklist_row

from test_pdf import case


def test_records_are_appended_never_rewritten(tmp_path):
    path = tmp_path / "sub" / "audit.jsonl"
    record({"input_sha256": "a"}, path)
    first = path.read_text()
    record({"input_sha256": "b"}, path)
    assert path.read_text().startswith(first)
    with open(path, "a") as handle:
        handle.write("{damaged\n")
    assert [r["input_sha256"] for r in read_records(path)] == ["a", "b"]
    assert all("time" in r for r in read_records(path))
    assert verify(path).problems == ["line 3 is damaged (not a record)"]  # reported, not skipped silently
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def _trail(path, key=None):
    for i, who in enumerate(["dr.a", "dr.b", "dr.c", "dr.d"]):
        record({"input_sha256": str(i)}, path, user=who, address="10.0.0.9", session="s1", key=key)
    return path.read_text().splitlines()


def test_each_line_names_who_from_where_and_the_chain_holds(tmp_path):
    path = tmp_path / "audit.jsonl"
    _trail(path)
    record_event("recording off", path, user="auditor@h.org", address="::1", session="s2")
    trail = verify(path)
    assert trail.intact and trail.legacy == 0
    assert [r["user"] for r in trail.records] == ["dr.a", "dr.b", "dr.c", "dr.d", "auditor@h.org"]
    assert trail.records[-1]["event"] == "recording off" and trail.records[0]["address"] == "10.0.0.9"


@pytest.mark.parametrize("change, found", [
    (lambda lines: lines[:1] + [lines[1].replace('"1"', '"9"')] + lines[2:], "line 2 was edited"),
    (lambda lines: lines[:1] + lines[2:], "the chain breaks before line 2"),
    (lambda lines: lines[:2] + [lines[1]] + lines[2:], "the chain breaks before line 3"),
    (lambda lines: lines[:2] + ['{"input_sha256": "x"}'] + lines[2:], "line 3 has no hash"),
])
def test_an_edited_removed_or_inserted_line_is_reported(tmp_path, change, found):
    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join(change(_trail(path))) + "\n")
    assert any(problem.startswith(found) for problem in verify(path).problems), verify(path).problems


def test_a_keyed_chain_cannot_be_rewritten_without_the_key(tmp_path):
    path = tmp_path / "audit.jsonl"
    _trail(path, key="right key")
    assert verify(path, key="right key").intact
    assert any("edited" in p for p in verify(path, key="wrong key").problems)
    assert any("no audit key" in p for p in verify(path).problems)


def test_lines_from_before_the_chain_are_legacy_not_tampering(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_text('{"time": "2026-01-01", "input_sha256": "old"}\n')
    record({"input_sha256": "new"}, path)
    trail = verify(path)
    assert trail.intact and trail.legacy == 1 and len(trail.records) == 2


def test_audit_entry_keeps_no_image_and_no_name():
    entry = audit_entry(case("DOE_JANE.dcm"), "m", "c" * 64)
    text = json.dumps(entry)
    assert "DOE" not in text and entry["input_sha256"] == "ab" * 32
    assert entry["result"] == "glioma" and entry["flags"] == "low confidence, close call"


def test_worklist_rows_and_csv():
    row = worklist_row(case("x.dcm"))
    assert row["slices"] == 2 and row["class"] == "glioma" and row["probability"] == 0.55
    assert row["sequence"] == ""  # the test case's header told none
    csv_text = worklist_csv([row, row])
    assert csv_text.splitlines()[0].startswith("case,slices,slice,sequence,class,probability")
    assert len(csv_text.splitlines()) == 3
    assert "x.dcm" not in csv_text and row["file"] == "x.dcm"  # on screen only: a file name can name a patient


def test_csv_cells_are_escaped_against_formulas():
    text = worklist_csv([{"a": "=HYPERLINK(1)", "b": "+1", "c": "@x", "d": "-2", "e": "fine", "f": -3}])
    assert text.splitlines()[1] == "'=HYPERLINK(1),'+1,'@x,'-2,fine,-3"
