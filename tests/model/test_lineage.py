"""The models a card records it started from: marked when their images lie within the run's own split, walked
in turn when not, and unreachable when their folder, data or weights are gone."""

import json

from brain_cnn.data.dataset import Sample, SplitManifest
from brain_cnn.model.lineage import WITHIN, mark_starts, seen_paths, start_folders, unreachable_starts


def _folder(path, root, train, validation=(), sha256="s"):
    path.mkdir(parents=True)
    splits = {"train": [Sample(p, "a") for p in train], "validation": [Sample(p, "a") for p in validation],
              "test": [Sample("test.png", "a")]}
    SplitManifest(str(root), ["a"], 42, splits, "made here").save(path / "split.json")
    (path / "card.json").write_text(json.dumps({"sha256": sha256}))
    return path


def test_a_start_within_the_runs_split_is_marked_and_one_that_saw_more_is_not(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    own = seen_paths(SplitManifest(str(root), ["a"], 42, {"train": [Sample("x.png", "a"), Sample("y.png", "a")],
                                                          "validation": [Sample("v.png", "a")]}, ""))
    inside = _folder(tmp_path / "inside", root, ["x.png"], ["v.png"])
    # The same files through another spelling of the root are the same files.
    wider = _folder(tmp_path / "wider", tmp_path / "data" / ".." / "data", ["x.png", "z.png"])
    entry = {"folder": str(inside), "training": {"initialised_from": {"folder": str(wider), "training": {}},
                                                 "teacher": {"folder": str(tmp_path / "gone")}}}
    marked = mark_starts(entry, own)
    assert marked[WITHIN] is True and WITHIN not in entry  # a copy: the card it came from is not changed
    assert marked["training"]["initialised_from"][WITHIN] is False  # z.png: seen by it, not by this run
    assert marked["training"]["teacher"][WITHIN] is False  # not readable now: to be checked where evaluated


def test_start_folders_skip_marked_starts_and_walk_the_others_and_the_members(tmp_path):
    training = {
        "initialised_from": {"folder": "runs/b", "sha256": "b", WITHIN: True,
                             "training": {"initialised_from": {"folder": "runs/a", WITHIN: True}}},
        "members": [{"folder": "models/m", "initialised_from": {
                        "folder": "runs/c", "sha256": "c", "training": {"teacher": {"folder": "runs/t"}}}},
                    {"folder": "models/maps", "started_from": "runs/maps/best.weights.h5"},
                    {"folder": "models/m2", "initialised_from": {"folder": "runs/c", "sha256": "c"}}]}
    assert [(str(f), s) for f, s in start_folders(training)] == [("runs/c", "c"), ("runs/t", None),
                                                                   ("runs/maps", None)]


def test_a_start_is_unreachable_without_its_split_its_data_or_its_weights(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    kept = _folder(tmp_path / "kept", root, ["x.png"], sha256="same")
    replaced = _folder(tmp_path / "replaced", root, ["x.png"], sha256="new")  # retrained since
    no_data = _folder(tmp_path / "no-data", tmp_path / "elsewhere", ["x.png"], sha256="d")
    training = {"members": [{"initialised_from": {"folder": str(f), "sha256": s}}
                            for f, s in ((kept, "same"), (replaced, "old"), (no_data, "d"),
                                         (tmp_path / "gone", "g"))]}
    assert unreachable_starts(training) == [replaced, no_data, tmp_path / "gone"]
