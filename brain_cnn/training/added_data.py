"""Other data sets added to a run's training split, and copies of held-out data removed from it."""

from __future__ import annotations

from pathlib import Path

from brain_cnn.data.dataset import SplitManifest
from brain_cnn.data.sources import content_hashes, drop_near_duplicates, folder_hashes, mapped_samples, parse_source
from brain_cnn.errors import DatasetError
from brain_cnn.training.config import TrainConfig

__all__ = ["add_sources"]


def add_sources(config: TrainConfig, root: Path, manifest: SplitManifest) -> tuple[list[dict], dict[str, str]]:
    """Add ``config.add_data`` to the training split and remove copies of held-out images.

    Changes ``manifest`` in place; returns what each added set contributed, for the card, and the data
    set of each added training file (the files of ``root`` itself are not listed).
    """
    if not config.add_data and not config.exclude:
        return [], {}
    excluded = folder_hashes(config.exclude) if config.exclude else None
    reports, origins = [], {}
    if excluded is not None:
        train_hashes = content_hashes(root, manifest.splits["train"])
        manifest.splits["train"], dropped = drop_near_duplicates(manifest.splits["train"], train_hashes, excluded)
        # The validation split picks the checkpoint, so a held-out source must not be in it either
        # (the main set may hold copies of it: brain-tumor-mri contains most of SARTAJ).
        validation = manifest.splits.get("validation", [])
        manifest.splits["validation"], from_validation = drop_near_duplicates(
            validation, content_hashes(root, validation), excluded)
        if validation and not manifest.splits["validation"]:
            raise DatasetError(f"every validation image of {root.name} is a copy of an image of "
                               f"{', '.join(config.exclude)}; nothing is left to choose the checkpoint on")
        reports.append({"name": root.name, "excluded_near_duplicates_of_held_out": dropped,
                        "excluded_from_validation": from_validation})
        print(f"held out {', '.join(Path(e).name for e in config.exclude)}: {dropped} training and "
              f"{from_validation} validation images of {root.name} dropped as copies", flush=True)
    # A calibration split (brain_cnn.data.carves) is held out as validation and test are.
    held = [s for split in ("validation", "calibration", "test") for s in manifest.splits.get(split, [])]
    held_hashes = content_hashes(root, held)
    for text in config.add_data:
        samples, report = mapped_samples(parse_source(text), root, manifest.classes)
        hashes = content_hashes(root, samples)
        samples, leaking = drop_near_duplicates(samples, hashes, held_hashes)
        dropped = 0
        if excluded is not None:  # the hashes of every mapped sample cover the ones still kept
            samples, dropped = drop_near_duplicates(samples, hashes, excluded)
        manifest.splits["train"] += samples
        # An added manifest's calibration split (brain_cnn.data.carves) is unseen by this run: it joins the
        # run's calibration split, for conformal prediction sets.
        calibration, _ = mapped_samples(parse_source(text), root, manifest.classes, "calibration")
        if calibration:
            manifest.splits["calibration"] = manifest.splits.get("calibration", []) + calibration
        origins.update((sample.path, report.data_set) for sample in samples)
        reports.append({"name": report.name, "data_set": report.data_set, "label_map": report.label_map,
                        "used": report.used,
                        "left_out": report.left_out, "near_duplicates_of_validation_or_test": leaking,
                        "excluded_near_duplicates_of_held_out": dropped, "training_images": len(samples)})
        print(f"added {report.name}: {len(samples)} training images ({leaking} copies of "
              f"validation/test and {dropped} of held-out folders dropped)", flush=True)
    if config.add_data:
        manifest.origin += "; training adds " + ", ".join(r["name"] for r in reports if "label_map" in r)
    if config.exclude:
        manifest.origin += f"; copies of {', '.join(Path(e).name for e in config.exclude)} removed"
    return reports, origins
