import json

from brain_cnn.reports.audit import read_records, record
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
    assert csv_text.splitlines()[0].startswith("file,slices,slice,sequence,class,probability")
    assert len(csv_text.splitlines()) == 3
