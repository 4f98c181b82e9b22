"""Training on several data sets at once, mapped onto one model's classes.

The main data set (``--data``) keeps its own validation and test splits.
Each added data set (``--add-data``) goes through its label map
(:mod:`brain_cnn.data.label_maps`) and joins the *training* split only:

* a tumour of a known type gets that class; a normal scan the no-tumour class;
* a tumour of a type the model has no class for gets the label
  :data:`brain_cnn.data.pipeline.SOFT_TUMOUR`, whose target spreads evenly over the
  tumour classes (it teaches "not normal" without claiming a type);
* lesions that are not tumours, and ignored folders, are left out.

An added source may also be a split manifest (another model's ``split.json``):
then only its *training* split joins, so that model's validation and test
images stay unseen and can still measure the new model on that data set.

Leakage is removed by image content, not by file name: an added image that is
a copy (in any orientation, :mod:`brain_cnn.data.leakage`) of a validation or test image of the main
set is dropped, and ``--exclude`` folders (a held-out source) remove their
copies from every training image, main set included. The public sets
overlap (half of SARTAJ is inside the 7,023-image set), so this matters.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from brain_cnn.data.classes import is_no_tumour
from brain_cnn.data.dataset import Sample, discover, open_data
from brain_cnn.data.label_maps import NO_TUMOUR, TUMOUR, bundled_label_map, load_label_map
from brain_cnn.data.leakage import ImageHashes, files_with_copies, hash_images, hash_samples
from brain_cnn.data.pipeline import SOFT_TUMOUR
from brain_cnn.errors import DatasetError

__all__ = ["SourceSpec", "parse_source", "mapped_samples", "content_hashes", "drop_near_duplicates", "folder_hashes",
           "SourceReport"]


@dataclass(frozen=True)
class SourceSpec:
    """An added data folder (or split manifest) and, optionally, its label map file."""

    data: str
    label_map: str | None = None


def parse_source(text: str) -> SourceSpec:
    """``DIR``, ``SPLIT.json`` or either with ``=MAP.json`` (the bundled map is used when none is given)."""
    data, _, mapping = text.partition("=")
    return SourceSpec(data, mapping or None)


@dataclass
class SourceReport:
    """What one added data set contributed, for the model card."""

    name: str  # for people: the folder's name, and which split of it when a manifest chose one
    label_map: str
    data_set: str = ""  # the folder's name alone, as screening reports and LOSO folds name data sets
    used: dict[str, int] = field(default_factory=dict)  # training label -> images
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> images


def mapped_samples(spec: SourceSpec, root: Path, classes: list[str],
                   split: str = "train") -> tuple[list[Sample], SourceReport]:
    """Every image of an added data set (of a manifest's ``split``) as a sample of the model's classes.

    Paths are made relative to the main data ``root`` so the split manifest
    stays one list of files.

    Raises:
        DatasetError: no label map for the folder, or one that does not fit.
    """
    source_root, source_samples, name = _source_images(spec.data, split)
    mapping = load_label_map(spec.label_map) if spec.label_map else bundled_label_map(source_root)
    if mapping is None:
        raise DatasetError(f"no bundled label map for {source_root.name}; give one as {spec.data}=MAP.json")
    no_tumour = [c for c in classes if is_no_tumour(c)]
    report = SourceReport(name, mapping.description, source_root.name)
    samples = []
    for sample in source_samples:
        target = mapping.target(sample.label, classes)
        if target.kind == TUMOUR:
            label = target.model_class or SOFT_TUMOUR
        elif target.kind == NO_TUMOUR and no_tumour:
            label = target.model_class or no_tumour[0]
        else:
            report.left_out[target.kind] = report.left_out.get(target.kind, 0) + 1
            continue
        relative = os.path.relpath(source_root / sample.path, root)
        samples.append(Sample(relative, label))
        report.used[label] = report.used.get(label, 0) + 1
    return samples, report


def _source_images(data: str, split: str = "train") -> tuple[Path, list[Sample], str]:
    """(root, samples, name for the card) of an added data folder (all of it, for training), or of a
    manifest's ``split``."""
    found = open_data(data)
    if Path(data).is_file():
        kind = "training" if split == "train" else split
        return found.root, found.splits.get(split, []), f"{found.root.name} ({kind} split of {data})"
    if split != "train":
        return found.root, [], found.root.name
    return found.root, [s for part in found.splits.values() for s in part], found.root.name


def content_hashes(root: Path, samples: list[Sample]) -> ImageHashes:
    """Perceptual and pixel hashes of samples (paths relative to ``root``), named by their paths."""
    return hash_samples(root, samples)


def drop_near_duplicates(samples: list[Sample], hashes: ImageHashes, reference: ImageHashes) -> tuple[list[Sample], int]:
    """``samples`` without those whose image has a copy (in any orientation) in ``reference``."""
    if not len(reference) or not samples:
        return samples, 0
    duplicated = files_with_copies(hashes, reference)
    kept = [s for s in samples if s.path not in duplicated]
    return kept, len(samples) - len(kept)


def folder_hashes(folders: list[str]) -> ImageHashes:
    """Hashes of every image of some data folders (a held-out source), for exclusion."""
    paths = []
    for folder in folders:
        found = discover(folder)
        paths += [found.root / s.path for samples in found.splits.values() for s in samples]
    return hash_images(paths)
