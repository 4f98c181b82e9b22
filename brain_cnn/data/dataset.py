"""Find the images of a folder-per-class data set and split them reproducibly.

Two layouts are understood:

* ``ROOT/<split>/<class>/...`` where ``<split>`` is a train/validation/test
  folder name in any case (``Training``, ``val``, ``Testing``, ...);
* ``ROOT/<class>/...`` (flat), which gets a stratified, seeded split.

Class names are the folder names exactly as written. The split actually used
is written to a manifest (``split.json``) so evaluation is reproducible.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from brain_cnn.errors import DatasetError
from brain_cnn.files import read_json, write_json

__all__ = [
    "IMAGE_EXTENSIONS",
    "Sample",
    "DataFolder",
    "SplitManifest",
    "discover",
    "make_split",
    "list_images",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
}
SPLITS = ("train", "validation", "calibration", "test")


def count_by_class(splits: dict[str, list["Sample"]]) -> dict[str, dict[str, int]]:
    """Images per class in each split, classes sorted."""
    return {split: dict(sorted(Counter(s.label for s in samples).items())) for split, samples in splits.items()}


@dataclass(frozen=True)
class Sample:
    """One image file and its class name; ``path`` is relative to the data root."""

    path: str
    label: str


@dataclass
class DataFolder:
    """What :func:`discover` found under a data root."""

    root: Path
    classes: list[str]
    splits: dict[str, list[Sample]]  # canonical split name -> samples; "all" when flat
    skipped: Counter = field(default_factory=Counter)  # reason -> count

    @property
    def is_flat(self) -> bool:
        return set(self.splits) == {"all"}

    def counts(self) -> dict[str, dict[str, int]]:
        return count_by_class(self.splits)


def _hidden(path: Path) -> bool:
    return path.name.startswith((".", "_._")) or path.name in {"__MACOSX", "Thumbs.db"}


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not _hidden(p))


def list_images(folder: Path, skipped: Counter | None = None,
                extensions: frozenset[str] | None = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files under ``folder`` (recursively, hidden ones left out), sorted; others are counted as skipped.

    ``extensions=None`` lists every visible file.
    """
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(_hidden(Path(part)) for part in relative.parts):
            if skipped is not None and path.is_file():
                skipped["hidden file"] += 1
            continue
        if not path.is_file():
            continue
        if extensions is None or path.suffix.lower() in extensions:
            found.append(path)
        elif skipped is not None:
            skipped[f"not an image ({path.suffix.lower() or 'no extension'})"] += 1
    return found


def _read_classes(root: Path, split_dir: Path, skipped: Counter) -> list[Sample]:
    samples = []
    for class_dir in _visible_dirs(split_dir):
        for path in list_images(class_dir, skipped):
            samples.append(Sample(path.relative_to(root).as_posix(), class_dir.name))
    for stray in split_dir.iterdir():
        if stray.is_file():
            skipped["file outside a class folder"] += 1
    return samples


def discover(root: str | Path) -> DataFolder:
    """Find classes and splits under ``root``.

    Raises:
        DatasetError: the folder does not exist or holds no class folders with images.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"data folder not found: {root}")
    subdirs = _visible_dirs(root)
    if not subdirs:
        raise DatasetError(f"{root} holds no class folders (expected ROOT/<class>/<images>)")
    skipped: Counter = Counter()
    split_names = {d: _SPLIT_ALIASES.get(d.name.lower()) for d in subdirs}
    if all(split_names.values()):
        splits: dict[str, list[Sample]] = {}
        for directory, split in split_names.items():
            if split in splits:
                raise DatasetError(f"{root} has two folders for the {split} split")
            splits[split] = _read_classes(root, directory, skipped)
    else:
        splits = {"all": _read_classes(root, root, skipped)}
    splits = {name: samples for name, samples in splits.items() if samples}
    if not splits:
        raise DatasetError(f"{root} holds no images in class folders")
    classes = sorted({s.label for samples in splits.values() for s in samples})
    return DataFolder(root=root, classes=classes, splits=splits, skipped=skipped)


def open_data(data: str | Path) -> DataFolder:
    """A data folder, or a split manifest (``split.json``): its folder with the saved splits.

    A manifest names another model's train/validation/test assignment, so its
    test split can be screened, or its training split added, without mixing them.

    Raises:
        DatasetError: the folder is unusable, or the manifest is unreadable or names a missing folder.
    """
    if not Path(data).is_file():
        return discover(data)
    manifest = SplitManifest.load(data)
    root = Path(manifest.root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{data} names the data folder {manifest.root}, which is not there")
    return DataFolder(root=root.resolve(), classes=list(manifest.classes),
                      splits={k: v for k, v in manifest.splits.items() if v})


@dataclass
class SplitManifest:
    """The train/validation/test assignment of every file, as saved with a model."""

    root: str
    classes: list[str]
    seed: int
    splits: dict[str, list[Sample]]
    origin: str  # how the split was made, for people reading the file

    def counts(self) -> dict[str, dict[str, int]]:
        return count_by_class(self.splits)

    def save(self, path: str | Path) -> None:
        payload = {
            "root": self.root,
            "classes": self.classes,
            "seed": self.seed,
            "origin": self.origin,
            "splits": {k: [[s.path, s.label] for s in v] for k, v in self.splits.items()},
        }
        write_json(path, payload)

    @classmethod
    def load(cls, path: str | Path) -> SplitManifest:
        try:
            payload = read_json(path, error=DatasetError)
            return cls(
                root=payload["root"],
                classes=list(payload["classes"]),
                seed=int(payload["seed"]),
                origin=payload.get("origin", ""),
                splits={k: [Sample(p, label) for p, label in v] for k, v in payload["splits"].items()},
            )
        except (DatasetError, KeyError, TypeError, ValueError) as error:
            raise DatasetError(f"split manifest {path} is unreadable: {error}") from None


def _stratified(samples: list[Sample], held_count: int, seed: int,
                groups: dict[str, str] | None = None) -> tuple[list[Sample], list[Sample]]:
    """Split off about ``held_count`` of ``samples``, stratified by class where possible.

    With ``groups`` (file -> group), every group lands whole on one side:
    copies of one slice, or the slices of one patient, are never split.
    """
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, train_test_split

    labels = [s.label for s in samples]
    counts = Counter(labels)
    if not 0 < held_count < len(samples):
        raise DatasetError(f"cannot hold out {held_count} of {len(samples)} images; the data set is too small")
    if groups:
        names = [groups.get(s.path, s.path) for s in samples]
        folds = max(2, round(len(samples) / held_count))
        if len(set(names)) < folds:
            raise DatasetError(f"cannot hold out {held_count} of {len(samples)} images: they form only "
                               f"{len(set(names))} groups of copies or patients")
        if min(counts.values()) >= folds:
            # One fold of a stratified group k-fold: about 1/k of the images, classes in proportion
            # as far as whole groups allow.
            splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        else:  # too few images of some class to stratify
            splitter = GroupShuffleSplit(n_splits=1, test_size=held_count / len(samples), random_state=seed)
        keep_index, held_index = next(splitter.split(samples, labels, names))
        keep, held = [samples[i] for i in keep_index], [samples[i] for i in held_index]
        return sorted(keep, key=lambda s: s.path), sorted(held, key=lambda s: s.path)
    # Stratify only when every class can appear on both sides.
    stratify = labels if min(counts.values()) >= 2 and held_count >= len(counts) else None
    keep, held = train_test_split(samples, test_size=held_count, random_state=seed, stratify=stratify)
    return sorted(keep, key=lambda s: s.path), sorted(held, key=lambda s: s.path)


def make_split(
    folder: DataFolder, seed: int = 42, validation_fraction: float = 0.1, test_fraction: float = 0.15,
    groups: dict[str, str] | None = None, calibration_fraction: float = 0.0,
) -> SplitManifest:
    """Train/validation/test split of a discovered folder.

    Official splits are kept as they are; missing ones are carved, stratified
    and seeded, out of the training data (flat folders get all three). With
    ``groups`` (file -> group, e.g. from :func:`brain_cnn.data.leakage.split_groups`)
    no group is cut by a carved split.
    """
    splits = dict(folder.splits)
    made = []
    if folder.is_flat:
        everything = splits.pop("all")
        total = len(everything)
        splits["train"], splits["test"] = _stratified(everything, round(test_fraction * total), seed, groups)
        made.append(f"test {test_fraction:.0%} of all")
    else:
        total = len(splits.get("train", []))
    if "train" not in splits:
        raise DatasetError(f"{folder.root} has no training split")
    if "validation" not in splits:
        count = round(validation_fraction * total)
        splits["train"], splits["validation"] = _stratified(splits["train"], count, seed, groups)
        made.append(f"validation {validation_fraction:.0%} carved from train")
    if calibration_fraction > 0 and "calibration" not in splits:
        # Images no network trains or picks its checkpoint on, for conformal prediction sets.
        count = round(calibration_fraction * total)
        splits["train"], splits["calibration"] = _stratified(splits["train"], count, seed, groups)
        made.append(f"calibration {calibration_fraction:.0%} carved from train")
    kept = [name for name in folder.splits if name != "all"]
    origin = "; ".join(
        ([f"official {', '.join(kept)} split kept"] if kept else ["no official split"]) + made
    ) + (" keeping copies and patients together" if groups else "") + f" (seed {seed})"
    return SplitManifest(
        root=str(folder.root),
        classes=folder.classes,
        seed=seed,
        splits={name: splits[name] for name in SPLITS if name in splits},
        origin=origin,
    )
