"""The models a card records it started from: marked when their images lie within the run's own split, walked
in turn, and unreachable when their folder, data or weights are gone."""

import json

from brain_cnn.data.dataset import Sample, SplitManifest
from brain_cnn.model.lineage import (WITHIN, mark_starts, readable_starts, seen_paths, start_folders,
                                     unreachable_starts)


def _folder(path, root, train, validation=(), sha256="s"):
    path.mkdir(parents=True)
    splits = {"train": [Sample(p, "a") for p in train], "validation": [Sample(p, "a") for p in validation],
              "test": [Sample("test.png", "a")]}
    SplitManifest(str(root), ["a"], 42, splits, "made here").save(path / "split.json")
    (path / "card.json").write_text(json.dumps({"sha256": sha256}))
    return path


def _own(root, paths):
    return seen_paths(SplitManifest(str(root), ["a"], 42, {"train": [Sample(p, "a") for p in paths]}, ""))


def test_a_start_within_the_runs_split_is_marked_and_one_that_saw_more_is_not(tmp_path):
    root = tmp_path / "data"
    (tmp_path / "other-set").mkdir()
    root.mkdir()
    # An added data set's files are written from the first set's root (../other-set/...).
    own = _own(root, ["x.png", "v.png", "../other-set/o.png"])
    # The same files through another spelling of the root are the same files.
    inside = _folder(tmp_path / "inside", tmp_path / "data" / ".." / "data", ["x.png", "../other-set/o.png"],
                     ["v.png"])
    wider = _folder(tmp_path / "wider", root, ["x.png", "z.png"])
    entry = {"folder": str(inside), "sha256": "s",
             "training": {"initialised_from": {"folder": str(wider), "sha256": "s", "training": {}},
                          "teacher": {"folder": str(tmp_path / "gone")}}}
    marked = mark_starts(entry, own)
    assert marked[WITHIN] is True and WITHIN not in entry  # a copy: the card it came from is not changed
    assert marked["training"]["initialised_from"][WITHIN] is False  # z.png: seen by it, not by this run
    assert marked["training"]["teacher"][WITHIN] is False  # not readable now: to be checked where evaluated
    # Replaced since it was started from: what it saw then is not what its split says now.
    assert mark_starts({**entry, "sha256": "old"}, own)[WITHIN] is False


def test_a_mark_made_by_an_intermediate_run_carries_through_it(tmp_path):
    """c1 -> c2 -> c3 on one carve: c1 is gone when c3 trains, but c2's card marked it within c2, and c2 is
    within c3. A mark under a start that is not within proves nothing."""
    root = tmp_path / "data"
    root.mkdir()
    c2 = _folder(tmp_path / "c2", root, ["x.png"])
    recorded = {"initialised_from": {"folder": str(tmp_path / "c1"), WITHIN: True}}
    marked = mark_starts({"folder": str(c2), "sha256": "s", "training": recorded}, _own(root, ["x.png"]))
    assert marked["training"]["initialised_from"][WITHIN] is True
    unmarked = mark_starts({"folder": str(tmp_path / "c2-gone"), "training": recorded}, _own(root, ["x.png"]))
    assert unmarked["training"]["initialised_from"][WITHIN] is False


def test_an_ensemble_teachers_members_starts_are_marked_and_walked(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    ensemble = _folder(tmp_path / "ensemble", root, ["x.png", "y.png"])
    members = [{"folder": "m1", "initialised_from": {"folder": "runs/m1-start", WITHIN: True}},
               {"folder": "m2", "initialised_from": {"folder": "models/elsewhere", WITHIN: False}}]
    teacher = mark_starts({"folder": str(ensemble), "sha256": "s", "training": {"members": members}},
                          _own(root, ["x.png", "y.png"]))
    assert [m["initialised_from"][WITHIN] for m in teacher["training"]["members"]] == [True, False]
    assert [str(f) for f, _ in start_folders({"teacher": teacher})] == ["models/elsewhere"]


def test_start_folders_skip_marked_starts_but_walk_what_they_started_from(tmp_path):
    training = {
        "initialised_from": {"folder": "runs/b", "sha256": "b", WITHIN: True,
                             "training": {"initialised_from": {"folder": "models/a", "sha256": "a"}}},
        "members": [{"folder": "models/m", "initialised_from": {
                        "folder": "runs/c", "sha256": "c", "training": {"teacher": {"folder": "runs/t"}}}},
                    {"folder": "models/maps", "started_from": "runs/maps/best.weights.h5"},
                    {"folder": "models/old-maps", "started_from": "recipe 2's best epoch (runs/maps-v2)"},
                    {"folder": "models/m2", "initialised_from": {"folder": "runs/c", "sha256": "c"}}]}
    assert [(str(f), s) for f, s in start_folders(training)] == [
        ("models/a", "a"),  # under a start within this run's split, one that saw more
        ("runs/c", "c"), ("runs/t", None), ("runs/maps", None), ("recipe 2's best epoch (runs/maps-v2)", None)]


def test_a_start_is_unreachable_without_its_split_its_data_or_its_weights(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    kept = _folder(tmp_path / "kept", root, ["x.png"], sha256="same")
    replaced = _folder(tmp_path / "replaced", root, ["x.png"], sha256="new")  # retrained since
    no_data = _folder(tmp_path / "no-data", tmp_path / "elsewhere", ["x.png"], sha256="d")
    training = {"members": [{"initialised_from": {"folder": str(f), "sha256": s}}
                            for f, s in ((kept, "same"), (replaced, "old"), (no_data, "d"),
                                         (tmp_path / "gone", "g"), (kept, "older"))]}
    assert unreachable_starts(training) == [
        f"{replaced} (it holds other weights than those started from)", f"{no_data} (its data cannot be read here)",
        f"{tmp_path / 'gone'} (its split cannot be read here)",
        f"{kept} (it holds other weights than those started from)"]
    # The same folder recorded once with the weights it holds is read: what it saw then is what it says now.
    assert readable_starts(training) == [kept]
