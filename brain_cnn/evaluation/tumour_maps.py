"""What a tumour-map network (:mod:`brain_cnn.model.tumour_maps`) finds on images it never trained on.

Figures, each on held-out data only (the run's ``sources.json`` says what it trained and validated on):

* **Dice** of the map (upsampled to the input, above 0.5) against the expert
  mask, per image, on the 4-class set's official ``Testing`` images that
  have a mask and on the LGG test patients' tumour slices; the mean over
  images, and the share of maps whose peak lies inside the tumour;
* **tumour vs no tumour** (the call, by the decision rule of the model card
  beside ``model.keras`` (:mod:`brain_cnn.inference.decision`; the top class
  without a card), is not "no tumour"; the score for the ROC: 1 - P(no
  tumour)) on the yes/no set, the 44-class test
  split by sequence, and the LGG test patients by sequence (their tumour-free
  slices stand in for normal scans: they come from tumour patients);
* **4-class accuracy** on the official test images with no copy of any kind
  among the 4-class images it trained or validated on, beside all of them;
* **the removal test** on the official test images with a mask: the tumour
  painted out from its mask (filled from the tissue around it, Telea
  inpainting), and a region of the same shape painted out elsewhere in the
  brain: how often the tumour probability falls below 0.5, and how often the
  call changes.

``python -m brain_cnn.evaluation.tumour_maps runs/tumour-maps`` writes
``tumour_maps.json`` in the run folder and prints the figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from brain_cnn.data.dataset import Sample, discover
from brain_cnn.data.label_maps import NO_TUMOUR, TUMOUR
from brain_cnn.data.leakage import ImageHashes, files_with_copies, hash_samples
from brain_cnn.evaluation.map_scores import dice, map_scores
from brain_cnn.data.painting import TELEA, brain_region, clear_margin, moved_region, paint_out
from brain_cnn.evaluation.screening import group_screening
from brain_cnn.files import read_json, write_json
from brain_cnn.evaluation.findings import record_evaluation
from brain_cnn.inference.decision import TOP_CLASS, decide
from brain_cnn.model.card import CARD_FILE, EVALUATION_FILE, TUMOUR_MAPS_FILE, load_card
from brain_cnn.model.tumour_maps import CLASSES, PROBABILITIES, TUMOUR_MAP
from brain_cnn.scan.sequences import sequence_of
from brain_cnn.training.tumour_maps import SOURCES_FILE, decode_pairs, mapped_pairs

__all__ = ["resolution_ceiling", "removal", "outline_agreement", "decision_of",
           "measure_tumour_maps"]

NOTUMOR = CLASSES.index("notumor")


def _predict(model, images: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    probabilities, maps = [], []
    for start in range(0, len(images), batch_size):
        out = model(images[start : start + batch_size].astype(np.float32), training=False)
        probabilities.append(np.asarray(out[PROBABILITIES]))
        maps.append(np.asarray(out[TUMOUR_MAP]))
    return np.concatenate(probabilities), np.concatenate(maps)


def resolution_ceiling(masks: np.ndarray, labels: np.ndarray, factors: tuple[int, ...] = (2, 4)) -> dict[str, Any]:
    """The best Dice a map at 1/f of the input's resolution can reach: each non-empty expert mask (N, S, S, 1)
    averaged down by f, upsampled back as the maps are and cut at 0.5, against itself. The mean overall, per
    class, and over the smallest tenth of the tumours (what small pituitary tumours lose)."""
    side = masks.shape[1]
    truths = masks[..., 0] > 127
    areas = truths.sum(axis=(1, 2))
    truths, labels, areas = truths[areas > 0], labels[areas > 0], areas[areas > 0]
    smallest = areas <= np.percentile(areas, 10)
    out: dict[str, Any] = {"images": len(truths), "smallest_tenth_up_to_pixels": int(areas[smallest].max())}
    for factor in factors:
        scores = np.array([dice(truth, cv2.resize(cv2.resize(truth.astype(np.float32), (side // factor,) * 2,
                                                             interpolation=cv2.INTER_AREA),
                                                  (side, side), interpolation=cv2.INTER_LINEAR) > 0.5)
                           for truth in truths])
        out[f"1/{factor}"] = {"mean_dice": round(float(scores.mean()), 4),
                              "by_class": {CLASSES[c]: round(float(scores[labels == c].mean()), 4)
                                           for c in sorted(set(labels.tolist()))},
                              "smallest_tenth_dice": round(float(scores[smallest].mean()), 4)}
    return out


def _peak_near(found: np.ndarray, truth: np.ndarray, pixels: int = 5) -> bool:
    """Whether the map's peak (upsampled to the mask's size) lies within ``pixels`` of the mask."""
    side = truth.shape[0]
    full = cv2.resize(found, (side, side), interpolation=cv2.INTER_LINEAR)
    grown = cv2.dilate(truth.astype(np.uint8), np.ones((2 * pixels + 1,) * 2, np.uint8)) > 0
    return bool(grown.flat[int(np.argmax(full))])


def removal(model, images: np.ndarray, masks: np.ndarray, seed: int = 0, decision: str = TOP_CLASS) -> dict[str, Any]:
    """The removal test on images with a tumour mask; see the module docstring. Calls by ``decision``."""
    rng = np.random.default_rng(seed)
    intact, hidden, elsewhere, hidden_masks = [], [], [], []
    for image, mask in zip(images, masks[..., 0] > 127):
        brain = brain_region(image[..., 0])
        # Clear of the tumour by more than the fill grows: the control leaves every tumour pixel as it was.
        moved = moved_region(mask, brain, rng, margin=clear_margin(TELEA)) if brain is not None and mask.any() else None
        if moved is None:
            continue
        intact.append(image)
        hidden.append(paint_out(image, mask))
        hidden_masks.append(mask)
        elsewhere.append(paint_out(image, moved))
    if not intact:
        return {"images": 0}
    (before, map_before), (after, map_after), (control, map_control) = (
        _predict(model, np.stack(batch)) for batch in (intact, hidden, elsewhere))
    tumour_after = 1 - after[:, NOTUMOR]
    peak_before, peak_after, peak_control = (m.max(axis=(1, 2, 3)) > 0.5 for m in (map_before, map_after, map_control))
    near = np.array([_peak_near(found, truth) for found, truth in zip(map_after[..., 0], hidden_masks)])
    call_before, call_after, call_control = (decide(p, CLASSES, decision) for p in (before, after, control))
    return {"images": len(intact),
            "map_peak_rule": {
                "below_half_when_painted_out": round(float((~peak_after).mean()), 4),
                "call_changed_when_elsewhere_painted_out": round(float((peak_control != peak_before).mean()), 4)},
            "tumour_probability_below_half_when_painted_out": round(float((tumour_after < 0.5).mean()), 4),
            # Where the map still fires once the tumour is gone: where it was, or elsewhere in the slice.
            "painted_out_peak_within_5px_of_the_tumour": round(float(near[peak_after].mean()), 4) if peak_after.any()
            else None,
            "map_pixels_above_half_median": {"intact": float(np.median((map_before > 0.5).sum(axis=(1, 2, 3)))),
                                             "painted_out": float(np.median((map_after > 0.5).sum(axis=(1, 2, 3))))},
            "call_changed_when_painted_out": round(float((call_after != call_before).mean()), 4),
            "call_changed_when_elsewhere_painted_out": round(float((call_control != call_before).mean()), 4),
            "skipped": len(images) - len(intact),
            "method": "the mask grown by 2 px and filled by Telea inpainting; the control: the same shape moved "
                      "to a random place inside the brain, 3 px or more clear of the tumour"}


def _screening(decoded, outputs: tuple[np.ndarray, np.ndarray], by_sequence: bool,
               keep: np.ndarray | None = None, decision: str = TOP_CLASS) -> dict[str, Any]:
    """Tumour vs no tumour on the decoded images (``keep``: those to count), overall and per sequence.

    Two decision rules: the class head's (tumour when the class ``decision``
    calls is not "no tumour") and, under ``map_peak_rule``, the map's alone
    (tumour when the map's peak is above 0.5; the peak is the score).
    """
    probabilities, maps = outputs
    keep = np.ones(len(decoded.labels), bool) if keep is None else keep
    kinds = np.where(decoded.labels == NOTUMOR, NO_TUMOUR, TUMOUR)[keep]
    called = (decide(probabilities, CLASSES, decision) != NOTUMOR)[keep]
    score = (1 - probabilities[:, NOTUMOR])[keep]
    peak = maps.max(axis=(1, 2, 3))[keep]
    result = {"overall": group_screening(kinds, called, score), "left_out_as_copies": int((~keep).sum()),
              "map_peak_rule": group_screening(kinds, peak > 0.5, peak)}
    if by_sequence:
        sequences = _sequences(decoded)[keep]
        result["by_sequence"] = {s: group_screening(kinds[sequences == s], called[sequences == s],
                                                    score[sequences == s]) for s in sorted(set(sequences))}
    return result


def _sequences(decoded) -> np.ndarray:
    """Each decoded image's MRI sequence, from its class folder's name ("unstated" where it says none)."""
    return np.array([sequence_of(Path(f).parent.name) or "unstated" for f in decoded.files])


def _seen(record: dict[str, Any], data: Path) -> ImageHashes:
    """Hashes of every image the run trained or validated on (the record of its ``sources.json``)."""
    parts = [(data / "brain-tumor-mri", record["brain-tumor-mri"], ("train", "validation")),
             (data / "brain-tumor-lgg", record["brain-tumor-lgg"], ("train", "validation")),
             (data / "brain-tumor-44c", record["brain-tumor-44c"], ("train",))]
    return ImageHashes.merge(hash_samples(root, [Sample(f, "") for split in splits for f in files.get(split, [])])
                             for root, files, splits in parts)


def _unseen(root: Path, decoded, seen: ImageHashes) -> np.ndarray:
    """Which decoded images (files named "<source>/<path>") have no copy of any kind in ``seen``."""
    paths = [f.split("/", 1)[1] for f in decoded.files]
    copies = files_with_copies(hash_samples(root, [Sample(path, "") for path in paths]), seen)
    return np.array([path not in copies for path in paths])


def outline_agreement(maps: np.ndarray, masks: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None,
                      keep: np.ndarray | None = None) -> dict[str, Any]:
    """Whether the outline (the map at 0.5, brought up to the input) agrees with the truth, per group (sequence).

    On no-tumour slices: the share with any outline at all (an outline drawn where the data says there is no
    tumour: ventricles, fat, skull). On tumour slices with a non-empty expert mask: the share with no outline,
    and the share whose outline covers no masked pixel (it circles something else).
    """
    keep = np.ones(len(labels), bool) if keep is None else keep
    groups = np.full(len(labels), "all") if groups is None else np.asarray(groups)
    side = masks.shape[1]
    outlined, misses = np.zeros(len(labels), bool), np.zeros(len(labels), bool)
    for i, found in enumerate(maps[..., 0]):
        full = cv2.resize(found, (side, side), interpolation=cv2.INTER_LINEAR) > 0.5
        outlined[i] = full.any()
        misses[i] = outlined[i] and not (full & (masks[i, ..., 0] > 127)).any()
    normal = labels == NOTUMOR
    masked = ~normal & (masks.reshape(len(masks), -1).max(axis=1) > 127)

    def share(flags, among):
        return {"share": round(float(flags[among].mean()), 4) if among.any() else None, "of": int(among.sum())}

    out = {}
    for group in sorted(set(groups[keep].tolist())):
        here = keep & (groups == group)
        out[group] = {"no_tumour_slices_with_an_outline": share(outlined, here & normal),
                      "masked_tumours_without_an_outline": share(~outlined, here & masked),
                      "masked_tumours_whose_outline_misses_the_tumour": share(misses, here & masked)}
    return out


def decision_of(run: str | Path) -> str:
    """The decision rule of the model card beside a run's ``model.keras``; the top class without a card.

    Raises:
        ModelFolderError: a card that cannot be used (an unknown rule among others).
    """
    return load_card(run).decision if Path(run, CARD_FILE).is_file() else TOP_CLASS


def measure_tumour_maps(run: str | Path, data: str | Path = "../shared/data") -> dict[str, Any]:
    """Measure a run folder's ``model.keras`` on the held-out data; writes and returns ``tumour_maps.json``.

    Calls are made by the decision rule of the ``card.json`` beside it, or by the top class without one.
    """
    import keras

    import brain_cnn.model.layers  # noqa: F401  (registers MaskedPooling, which loading needs)

    run, data = Path(run), Path(data)
    model = keras.saving.load_model(run / "model.keras", compile=False, safe_mode=True)
    size = int(model.inputs[0].shape[1])
    record = read_json(run / SOURCES_FILE)
    decision = decision_of(run)
    report: dict[str, Any] = {"model": str(run / "model.keras"), "image_size": size, "decision": decision}

    four = discover(data / "brain-tumor-mri")
    decoded = decode_pairs(mapped_pairs(four.root, four.splits["test"], "brain-tumor-mri"), size)
    probabilities, maps = _predict(model, decoded.images)
    with_mask = decoded.known & (decoded.labels != NOTUMOR)  # a tumour's mask is known only from its file
    report["official_test_masks"] = map_scores(maps[with_mask], decoded.masks[with_mask])
    report["official_test_masks"]["resolution_ceiling"] = resolution_ceiling(decoded.masks[with_mask],
                                                                             decoded.labels[with_mask])
    report["official_test_outlines"] = outline_agreement(maps, decoded.masks, decoded.labels,
                                                         keep=with_mask | (decoded.labels == NOTUMOR))
    report["official_test_removal"] = removal(model, decoded.images[with_mask], decoded.masks[with_mask],
                                              decision=decision)
    seen = _seen(record, data)  # every image it trained or validated on, of every source
    unseen = _unseen(four.root, decoded, seen)
    right = decide(probabilities, CLASSES, decision) == decoded.labels
    report["official_test_accuracy"] = {"all": round(float(right.mean()), 4), "images": len(right),
                                        "unseen": round(float(right[unseen].mean()), 4) if unseen.any() else None,
                                        "unseen_images": int(unseen.sum())}

    lgg = discover(data / "brain-tumor-lgg")
    held = set(record["brain-tumor-lgg"]["test"])
    lgg_test = mapped_pairs(lgg.root, [s for s in lgg.splits["all"] if s.path in held], "brain-tumor-lgg")
    decoded = decode_pairs(lgg_test, size)
    probabilities, maps = _predict(model, decoded.images)
    report["lgg_test_masks"] = map_scores(maps, decoded.masks)
    report["lgg_test_screening"] = _screening(decoded, (probabilities, maps), True, decision=decision)
    report["lgg_test_outlines"] = outline_agreement(maps, decoded.masks, decoded.labels, _sequences(decoded))

    # The other held-out sources share images with the training sources: count only those with no copy there.
    yes_no = discover(data / "brain-tumor-yes-no")
    decoded = decode_pairs(mapped_pairs(yes_no.root, yes_no.splits["all"], "brain-tumor-yes-no"), size)
    report["yes_no_screening"] = _screening(decoded, _predict(model, decoded.images), False,
                                            _unseen(yes_no.root, decoded, seen), decision)
    c44 = discover(data / "brain-tumor-44c")
    held = set(record["brain-tumor-44c"]["test"])
    decoded = decode_pairs(mapped_pairs(c44.root, [s for s in c44.splits["all"] if s.path in held], "brain-tumor-44c"), size)
    outputs = _predict(model, decoded.images)
    unseen = _unseen(c44.root, decoded, seen)
    report["c44_test_screening"] = _screening(decoded, outputs, True, unseen, decision)
    # No masks here: only the normals tell whether an outline lands on normal anatomy (T2's bright ventricles).
    report["c44_test_outlines"] = outline_agreement(outputs[1], decoded.masks, decoded.labels, _sequences(decoded),
                                                    unseen)
    write_json(run / TUMOUR_MAPS_FILE, report)
    if (run / EVALUATION_FILE).is_file():  # a model folder already evaluated: its card's limitations take these in
        record_evaluation(run, read_json(run / EVALUATION_FILE))
    return report


def _line(name: str, group: dict[str, Any]) -> str:
    pct = lambda v: "n/a" if v is None else f"{v:.1%}"  # noqa: E731
    return (f"  {name:<34} sensitivity {pct(group['sensitivity'])} ({group['tumour']} tumours), specificity "
            f"{pct(group['specificity'])} ({group['no_tumour']} normals), AUC {group['roc_auc']}, sensitivity at "
            f"90% specificity {pct(group.get('sensitivity_at_90_specificity'))}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m brain_cnn.evaluation.tumour_maps",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("run", help="the run folder (model.keras and sources.json)")
    parser.add_argument("--data", default="../shared/data", help="the folder holding the public data sets")
    args = parser.parse_args(argv)
    report = measure_tumour_maps(args.run, args.data)
    for name in ("official_test_masks", "lgg_test_masks"):
        scores = report[name]
        print(f"{name}: {scores['images']} images, mean Dice {scores['mean_dice']}, median {scores['median_dice']}, "
              f"peak inside the tumour {scores['peak_inside']}")
    gone = report["official_test_removal"]
    print(f"removal test ({gone['images']} official test tumours): tumour probability below 0.5 with the tumour "
          f"painted out {gone.get('tumour_probability_below_half_when_painted_out')}; calls changed by painting "
          f"out the same shape elsewhere {gone.get('call_changed_when_elsewhere_painted_out')}; by the map's peak "
          f"alone: {gone.get('map_peak_rule')}")
    accuracy = report["official_test_accuracy"]
    print(f"official test accuracy (calls by the {report['decision']} rule): {accuracy['unseen']} on the "
          f"{accuracy['unseen_images']} unseen, {accuracy['all']} on all {accuracy['images']}")
    for name in ("yes_no_screening", "c44_test_screening", "lgg_test_screening"):
        print(f"{name} ({report[name]['left_out_as_copies']} images left out as copies of training images)")
        print(_line("all", report[name]["overall"]))
        print(_line("all, by the map's peak alone", report[name]["map_peak_rule"]))
        for sequence, group in report[name].get("by_sequence", {}).items():
            print(_line(sequence, group))
    for name in ("official_test_outlines", "lgg_test_outlines", "c44_test_outlines"):
        print(f"{name}:")
        for sequence, group in report[name].items():
            print("  " + sequence + ": " + "; ".join(f"{key.replace('_', ' ')} {_share(value)}"
                                                      for key, value in group.items() if value["of"]))
    return 0


def _share(value: dict[str, Any]) -> str:
    return f"{value['share']:.1%} of {value['of']}"


if __name__ == "__main__":
    sys.exit(main())
