"""One carve of every training data set into train, validation, calibration and test, shared by every model.

Conformal prediction (:mod:`brain_cnn.inference.conformal`) needs images that
no network of a model folder trained on or picked its checkpoint on, and that
hold no copy of such an image: the *calibration* split. A model folder whose
members were all trained on one carve can be calibrated on that carve's
calibration split; so the classifiers and the tumour-map network train on the
same carve, written once as one split manifest per data set
(``<out>/<data set>.json``, e.g. ``splits/brain-tumor-mri.json``):

* ``brain-tumor-mri``: validation carved from ``Training`` by copies (the
  carve every shipped model validated on), calibration another share of
  ``Training`` by copies, test the official ``Testing`` split;
* ``brain-tumor-lgg``: validation and test by patient (as before), calibration
  a share of the training patients;
* ``brain-tumor-44c``: the shipped 44-class split's validation and test,
  calibration a share of its training split by copies.

A calibration image with a copy, in any orientation, among the training or
validation images of any of the sets goes back to training: the sets overlap.

``python -m brain_cnn.data.carves --data ../shared/data --out splits``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from brain_cnn.data.dataset import SplitManifest, _stratified, discover
from brain_cnn.data.leakage import files_with_copies, grouped_split, hash_images, patient_groups, split_groups

__all__ = ["CALIBRATION", "RECORD_FILE", "SETS", "carve_calibration", "carve_sets", "recorded_files"]

CALIBRATION = "calibration"
SETS = ("brain-tumor-mri", "brain-tumor-lgg", "brain-tumor-44c")
# A tumour-map run's record of every split it made, per data set (its split.json leaves out the tumours of an
# unstated type, which it trained on all the same).
RECORD_FILE = "sources.json"


def recorded_files(folder: str | Path, data: str | Path, splits: tuple[str, ...] = ("train", "validation")
                   ) -> list[Path]:
    """The files a model folder's record (:data:`RECORD_FILE`) lists in ``splits``, under the data root ``data``;
    none without a record."""
    path = Path(folder) / RECORD_FILE
    if not path.is_file():
        return []
    record = json.loads(path.read_text())
    return [Path(data) / name / file for name, made in record.items() for split in splits
            for file in made.get(split, [])]


def carve_calibration(manifest: SplitManifest, fraction: float = 0.1, seed: int = 42) -> SplitManifest:
    """``manifest`` with about ``fraction`` of its training images moved to a calibration split, copies and
    patients kept together (:func:`brain_cnn.data.leakage.split_groups`), classes in proportion."""
    train = manifest.splits["train"]
    groups = split_groups(manifest.root, train)
    keep, held = _stratified(train, round(fraction * len(train)), seed, groups)
    splits = {name: list(samples) for name, samples in manifest.splits.items()}
    splits["train"], splits[CALIBRATION] = keep, held
    return SplitManifest(manifest.root, list(manifest.classes), manifest.seed, splits,
                         f"{manifest.origin}; calibration {fraction:.0%} of train by copies and patients "
                         f"(seed {seed})")


def _paths(manifest: SplitManifest, split: str) -> list[Path]:
    return [Path(manifest.root) / s.path for s in manifest.splits.get(split, [])]


def _return_copies(manifests: dict[str, SplitManifest]) -> dict[str, int]:
    """Move every calibration image with a copy among any set's training or validation images back to
    training, its patient with it, until none is left (a moved image may copy another set's calibration image)."""
    moved = {name: 0 for name in manifests}
    while True:
        seen = hash_images([p for m in manifests.values() for split in ("train", "validation")
                            for p in _paths(m, split)])
        changed = False
        for name, manifest in manifests.items():
            calibration = manifest.splits[CALIBRATION]
            found = files_with_copies(hash_images(_paths(manifest, CALIBRATION)), seen)
            copied = {s.path for s in calibration if str(Path(manifest.root) / s.path) in found}
            # A patient goes back whole: none of a calibration patient's slices may be trained on.
            patients = patient_groups(manifest.root, calibration)
            gone = {patients[p] for p in copied if p in patients}
            back = [s for s in calibration if s.path in copied or patients.get(s.path) in gone]
            if back:
                manifest.splits[CALIBRATION] = [s for s in calibration if s not in back]
                manifest.splits["train"] = sorted(manifest.splits["train"] + back, key=lambda s: s.path)
                moved[name] += len(back)
                changed = True
        if not changed:
            return moved


def _base(data: Path, name: str, seed: int, shipped_44c: Path | None) -> SplitManifest:
    if name == "brain-tumor-44c" and shipped_44c is not None and shipped_44c.is_file():
        found = SplitManifest.load(shipped_44c)
        return SplitManifest(str(data / name), found.classes, found.seed, found.splits, found.origin)
    return grouped_split(discover(data / name), seed)


def carve_sets(data: str | Path, fraction: float = 0.1, seed: int = 42,
               shipped_44c: str | Path | None = None) -> tuple[dict[str, SplitManifest], dict[str, int]]:
    """Each of :data:`SETS` found under ``data`` carved into train/validation/calibration/test, and how many
    calibration images per set went back to training as copies of a training image."""
    data = Path(data)
    manifests = {name: carve_calibration(_base(data, name, seed, Path(shipped_44c) if shipped_44c else None),
                                         fraction, seed)
                 for name in SETS if (data / name).is_dir()}
    return manifests, _return_copies(manifests)


def _relative(manifest: SplitManifest, out: Path) -> SplitManifest:
    """The manifest rooted as a path relative to the project (``../shared/data/...``) when it can be."""
    root = Path(manifest.root).resolve()
    try:
        relative = Path("..") / root.relative_to(Path.cwd().resolve().parent)
    except ValueError:
        relative = root
    return SplitManifest(str(relative), manifest.classes, manifest.seed, manifest.splits, manifest.origin)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data", help="the folder holding the data sets")
    parser.add_argument("--out", default="splits", help="where to write <data set>.json")
    parser.add_argument("--fraction", type=float, default=0.1, help="share of each training split to calibrate on")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--shipped-44c", default="models/brain-tumor-44c/split.json",
                        help="the 44-class split every shipped model used (its validation and test are kept)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifests, moved = carve_sets(args.data, args.fraction, args.seed, args.shipped_44c)
    for name, manifest in manifests.items():
        _relative(manifest, out).save(out / f"{name}.json")
        counts = {split: sum(c.values()) for split, c in manifest.counts().items()}
        print(f"{name}: {counts}; {moved[name]} calibration copies of training or validation images went back to train")


if __name__ == "__main__":
    main()
