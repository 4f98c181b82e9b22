import json

from brain_cnn.data.roots import confine, data_roots


def test_data_roots_are_the_data_folders_and_those_the_cards_name(tmp_path):
    data, named, models = tmp_path / "data", tmp_path / "project" / "named", tmp_path / "models"
    data.mkdir()
    named.mkdir(parents=True)
    (models / "m").mkdir(parents=True)
    (models / "m" / "card.json").write_text(json.dumps({"dataset": {"root": "named"}}))
    (models / "gone").mkdir()
    (models / "gone" / "card.json").write_text(json.dumps({"dataset": {"root": "/nowhere/at/all"}}))
    (models / "root").mkdir()
    (models / "root" / "card.json").write_text(json.dumps({"dataset": {"root": "/"}}))  # never the whole disk
    assert data_roots([data, data / "missing", data], models, tmp_path / "project") == [data, named.resolve()]


def test_only_paths_inside_a_root_are_let_through_links_followed(tmp_path):
    root = tmp_path / "data"
    (root / "set").mkdir(parents=True)
    (root / "escape").symlink_to(tmp_path)
    roots = [root.resolve()]
    assert confine(str(root / "set"), roots) == (root / "set").resolve()
    assert confine(str(root), roots) == root.resolve()
    for refused in ["/", str(root / ".." / ".."), str(root / "escape"), "set", "", str(root) + "\0x",
                    str(tmp_path / "data-other")]:
        assert confine(refused, roots) is None, refused
