from brain_cnn.data.summary import summarise

from conftest import write_class_folder


def test_summary_counts_formats_and_examples(tmp_path):
    write_class_folder(tmp_path / "Training", {"no": 5, "yes": 3}, size=48)
    write_class_folder(tmp_path / "Testing", {"no": 2, "yes": 2}, size=48)
    (tmp_path / "Testing" / "yes" / "broken.jpg").write_bytes(b"not really")
    summary = summarise(tmp_path, examples_per_class=2)
    assert summary.counts() == {"train": {"no": 5, "yes": 3}, "test": {"no": 2, "yes": 3}}
    assert {c: len(f) for c, f in summary.examples.items()} == {"no": 2, "yes": 2}
    assert summary.formats[("JPEG", "L")] == 12 and summary.unreadable == 1
    assert summary.sizes[(48, 48)] == 12
