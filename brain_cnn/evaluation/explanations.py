"""Do the explanations point at the tumour? Heat maps measured against expert boxes.

For each image with a tumour bounding box (YOLO format: centre and size as
fractions of the image) and for each explanation method of the app:

* pointing game (Zhang et al., 2018, arXiv:1608.00507): the heat map's
  maximum falls inside the box;
* energy share: the fraction of the heat map's total inside the box;
* IoU of the heat map thresholded at half its maximum with the box;
* peak off the brain: the maximum falls on the skull, the scalp or outside
  the head, where no brain tumour can be: evidence the network took from
  how the picture was taken, not from a tumour.

And whether the call needs the tumour at all (a deletion test, in the spirit
of Samek et al., 2017, and RemOve-And-Retrain's question without the
retraining): the box is painted over from the tissue around it (OpenCV's
Telea inpainting; a black hole could itself look like a necrotic core) and
the image classified again; as a control, a box of the same size is painted
over elsewhere in the brain. A call that survives the tumour's removal as
often as the control's is made from something else, and a faithful heat map
then cannot point at the tumour, whatever the method.

Heat maps are computed for the image's true class on the model input (the
head crop); boxes are carried into the same coordinates.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2

import numpy as np

from brain_cnn.data.painting import brain_region
from brain_cnn.errors import UnreadableImageError
from brain_cnn.explain.explainer import Explainer, METHODS
from brain_cnn.inference.decision import TOP_CLASS, decide
from brain_cnn.inference.predictor import predict_probabilities
from brain_cnn.scan.preprocess import prepare_slice, read_file
from brain_cnn.scan.read import read_scan

__all__ = ["Box", "read_boxes", "box_in_model_input", "boxed_inputs", "hide_box", "control_boxes",
           "removal_test", "score_heatmap", "evaluate_explanations"]


@dataclass(frozen=True)
class Box:
    path: str  # relative to the data root
    label: str
    x_center: float
    y_center: float
    width: float
    height: float


def read_boxes(path: str | Path) -> list[Box]:
    with open(path, newline="") as handle:
        return [Box(r["path"], r["label"], float(r["x_center"]), float(r["y_center"]), float(r["width"]),
                    float(r["height"])) for r in csv.DictReader(handle)]


def box_in_model_input(box: Box, original_shape: tuple[int, int], offset: tuple[int, int], side: int,
                       size: int) -> tuple[int, int, int, int]:
    """The box as (x0, y0, x1, y1) pixels of the model input (head crop resized to ``size``)."""
    height, width = original_shape
    dx, dy = offset
    scale = size / side
    x0 = (box.x_center - box.width / 2) * width + dx
    x1 = (box.x_center + box.width / 2) * width + dx
    y0 = (box.y_center - box.height / 2) * height + dy
    y1 = (box.y_center + box.height / 2) * height + dy
    clip = lambda v: int(round(min(max(v * scale, 0), size)))  # noqa: E731
    return clip(x0), clip(y0), max(clip(x1), clip(x0) + 1), max(clip(y1), clip(y0) + 1)


def boxed_inputs(root: str | Path, boxes: list[Box], classes: list[str], image_size: int):
    """For each box: ``(box, model input (S, S, 1), box in its pixels, None)``, through the one preprocessing
    path; ``(box, None, None, reason)`` for a box of another class or an unreadable file."""
    for box in boxes:
        if box.label not in classes:
            yield box, None, None, f"class {box.label} is not one of the model's"
            continue
        try:
            scan = read_scan(read_file(Path(root) / box.path), box.path)
            if scan.is_volume:
                raise UnreadableImageError(f"{box.path}: a volume, not one slice with a box")
        except UnreadableImageError as error:  # an unreadable file is listed, not fatal
            yield box, None, None, str(error)
            continue
        prepared = prepare_slice(scan.slices[0], image_size)
        yield box, prepared.model_input, box_in_model_input(box, scan.slices[0].shape, prepared.offset,
                                                            prepared.crop.shape[0], image_size), None


def hide_box(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """A copy of ``image`` (S, S, 1) with ``box`` painted over from its surroundings (Telea inpainting).

    Not black: a black hole could itself look like a lesion (a glioma's dark necrotic core).
    """
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[box[1]:box[3], box[0]:box[2]] = 1
    return cv2.inpaint(np.ascontiguousarray(image[..., 0]), mask, 5, cv2.INPAINT_TELEA)[..., None]


def control_boxes(brain: np.ndarray, box: tuple[int, int, int, int], count: int,
                  rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """Up to ``count`` boxes of ``box``'s size, each centred on a pixel of ``brain`` and clear of ``box``."""
    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0
    side = brain.shape[0]
    ys, xs = np.nonzero(brain)
    placed = []
    for index in rng.permutation(len(ys))[: 50 * count]:
        a0 = min(max(int(xs[index]) - width // 2, 0), side - width)
        b0 = min(max(int(ys[index]) - height // 2, 0), side - height)
        if a0 < x1 and a0 + width > x0 and b0 < y1 and b0 + height > y0:
            continue
        placed.append((a0, b0, a0 + width, b0 + height))
        if len(placed) == count:
            break
    return placed


def removal_test(model, model_input: np.ndarray, box: tuple[int, int, int, int], target: int,
                 brain: np.ndarray | None, rng: np.random.Generator, placements: int = 8,
                 hide: Callable[[np.ndarray, tuple[int, int, int, int]], np.ndarray] = hide_box,
                 classes: Sequence[str] | None = None, decision: str = TOP_CLASS) -> dict[str, float | None]:
    """Class ``target``'s probability and call: intact, with the tumour's box hidden, and (mean of up to
    ``placements`` controls) with a box of its size hidden elsewhere in the brain.

    ``hide`` paints a box over (:func:`hide_box` unless another way of hiding is being compared). The call is
    made from the probabilities by ``decision`` over ``classes`` (the model card's); without ``classes``, the top
    class.
    """
    region = brain if brain is not None else np.ones(model_input.shape[:2], bool)
    controls = control_boxes(region, box, placements, rng)
    batch = np.stack([model_input, hide(model_input, box)] + [hide(model_input, c) for c in controls])
    probabilities = predict_probabilities(model, batch)
    calls = decide(probabilities, classes, decision) if classes is not None else probabilities.argmax(1)
    kept, called = probabilities[:, target], calls == target
    return {"p_intact": float(kept[0]), "called_intact": float(called[0]),
            "p_tumour_hidden": float(kept[1]), "called_tumour_hidden": float(called[1]),
            "p_elsewhere_hidden": float(kept[2:].mean()) if controls else None,
            "called_elsewhere_hidden": float(called[2:].mean()) if controls else None}


def score_heatmap(heatmap: np.ndarray, box: tuple[int, int, int, int],
                  brain: np.ndarray | None = None) -> dict[str, float]:
    """Pointing hit, energy share inside the box and IoU of the half-maximum region with the box.

    With ``brain`` (:func:`brain_cnn.data.painting.brain_region`), also whether the peak is off the brain.
    """
    x0, y0, x1, y1 = box
    inside = np.zeros_like(heatmap, dtype=bool)
    inside[y0:y1, x0:x1] = True
    peak = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    total = float(heatmap.sum())
    region = heatmap >= 0.5 * float(heatmap.max()) if heatmap.max() > 0 else np.zeros_like(inside)
    union = float((region | inside).sum())
    score = {
        "hit": float(inside[peak]),
        "energy": float(heatmap[inside].sum() / total) if total > 0 else 0.0,
        "iou": float((region & inside).sum() / union) if union else 0.0,
    }
    if brain is not None:
        score["off_brain"] = float(not brain[peak])
    return score


def evaluate_explanations(model, classes: list[str], image_size: int, data_root: str | Path, boxes: list[Box],
                          methods: list[str] | None = None, examples: int = 6,
                          decision: str = TOP_CLASS) -> dict[str, Any]:
    """Scores of each method over the boxed images, the removal test (:func:`removal_test`, calls by
    ``decision``, the model card's rule) per tumour type; also the first ``examples`` files with their boxes."""
    explainer = Explainer(model)
    rng = np.random.default_rng(0)  # the control boxes' places: the same figures on every run
    methods = methods or list(METHODS)
    root = Path(data_root)
    scores: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    used, skipped = [], []
    for box, model_input, target, reason in boxed_inputs(root, boxes, classes, image_size):
        if reason:
            skipped.append({"file": box.path, "reason": reason})
            continue
        brain = brain_region(model_input[..., 0])
        per_method = {}
        for method in methods:
            score = score_heatmap(explainer.heatmap(model_input, classes.index(box.label), method), target, brain)
            scores[method].append(score)
            per_method[method] = score
        removal = removal_test(model, model_input, target, classes.index(box.label), brain, rng, classes=classes,
                               decision=decision)
        used.append({"file": box.path, "label": box.label, "box": list(target), "scores": per_method,
                     "removal": removal})
    # Per tumour type too: types differ in size and place (a pituitary tumour is a few
    # per cent of the slice), and a reader should know for which the heat map can be trusted.
    by_class = {label: {method: _summary([u["scores"][method] for u in used if u["label"] == label])
                        for method in methods}
                for label in sorted({u["label"] for u in used})}
    area = lambda b: (b[2] - b[0]) * (b[3] - b[1]) / image_size**2  # noqa: E731
    box_share = {label: round(float(np.mean([area(u["box"]) for u in used if u["label"] == label])), 4)
                 for label in by_class}
    return {"methods": {method: _summary(values) for method, values in scores.items()}, "by_class": by_class,
            "box_share_by_class": box_share,
            "removal": {"fill": "inpaint", "placements": 8, "decision": decision,
                        "by_class": {label: _removal_summary([u["removal"] for u in used if u["label"] == label])
                                     for label in by_class},
                        "all": _removal_summary([u["removal"] for u in used])},
            "examples": used[:examples], "per_image": used, "skipped": skipped, "image_size": image_size}


def _summary(values: list[dict[str, float]]) -> dict[str, Any]:
    def mean(key):
        present = [v[key] for v in values if key in v]
        return round(float(np.mean(present)), 4) if present else None

    return {"images": len(values), "pointing_game": mean("hit"), "energy_in_box": mean("energy"), "iou": mean("iou"),
            "peak_off_brain": mean("off_brain")}


def _removal_summary(values: list[dict[str, float | None]]) -> dict[str, Any]:
    def mean(key):
        present = [v[key] for v in values if v.get(key) is not None]
        return round(float(np.mean(present)), 4) if present else None

    return {"images": len(values), **{key: mean(key) for key in values[0]}} if values else {"images": 0}


