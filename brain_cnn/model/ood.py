"""Refuse what the model cannot judge: an out-of-distribution gate.

Three layers, cheapest first:

0. What a DICOM header says: another modality (CT, radiograph, ultrasound)
   or a body part that is not the head. The feature gate below learned what
   brain MRI looks like, not what other anatomy does: a real abdominal CT
   slice (a mislabelled "tumour" image of the yes/no set) passes it at a
   distance typical of brain scans, so where the header says so, it decides.
1. Image checks that need no network: a blank or constant image, and a
   colourful image (photographs, slides, screenshots; MRI slices are grey).
2. Feature distance (Lee et al., 2018, "A Simple Unified Framework for
   Detecting Out-of-Distribution Samples", arXiv:1807.03888): class-conditional
   Gaussians with one shared, Ledoit-Wolf-shrunk covariance are fitted to the
   network's globally pooled features of three depths (:data:`FEATURE_LAYERS`,
   concatenated) of the training images; an input whose smallest
   Mahalanobis distance to a class exceeds a threshold is refused. The
   threshold is the 99.5th percentile of the validation images' distances, so
   about 0.5 % of real in-distribution scans are refused by design.

The fitted gate is saved as ``ood.npz`` in the model folder (plain arrays,
loaded without pickle) and its SHA-256 is recorded in the card.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["GATE_FILE", "FEATURE_LAYERS", "Gate", "header_check", "image_check", "fit_gate", "MAX_COLOURFULNESS"]

GATE_FILE = "ood.npz"
# Pooled outputs of these layers, concatenated, are the gate's features (the last is already pooled).
FEATURE_LAYERS = ("stage1_b", "stage2_b", "pool")
# Hasler-Suesstrunk colourfulness: over all 15,014 images of the public sets the
# largest is 23.6 (a few tinted JPEGs of the 4-class set; 18 are above 12);
# natural photographs score 30-150. Less tinted colour images are left to the
# feature-distance gate.
MAX_COLOURFULNESS = 30.0
MIN_CONTRAST = 2.0  # grey-level standard deviation below which an image is blank


# DICOM modalities (PS3.3 C.7.3.1.1.1) that are not MRI, by name for the message. A secondary capture (SC)
# or "other" (OT) can hold an MRI slice a workstation exported, so those are left to the image checks.
_NOT_MRI = {"CT": "a CT", "CR": "a radiograph", "DX": "a radiograph", "MG": "a mammogram", "US": "an ultrasound",
            "PT": "a PET", "NM": "a nuclear medicine", "XA": "an angiography", "RF": "a fluoroscopy",
            "IO": "an intra-oral radiograph", "PX": "a panoramic radiograph", "OP": "an ophthalmic",
            "ES": "an endoscopy", "XC": "a photograph", "SM": "a microscopy"}
# Body Part Examined values (PS3.16 CID 4031 and common free text) that are not the head. The element is
# free text in practice, so only a recognised other region refuses, and never beside a head term; an unknown
# or absent value is left to the image and feature checks, rather than refuse brain scans labelled otherwise.
_NOT_HEAD = frozenset("""CHEST THORAX LUNG LUNGS BREAST HEART CARDIAC ABDOMEN ABD LIVER KIDNEY PANCREAS PELVIS
    PROSTATE UTERUS BLADDER SPINE CSPINE TSPINE LSPINE TLSPINE SSPINE SACRUM COCCYX SHOULDER ARM ELBOW WRIST HAND
    FINGER HIP FEMUR LEG KNEE ANKLE FOOT TOE EXTREMITY EXTREMITIES WHOLEBODY CHESTABDOMEN ABDOMENPELVIS
    CHESTABDPELVIS""".split())
_HEAD = ("HEAD", "BRAIN", "SKULL", "CEREB", "CRAN", "SELLA", "PITUIT", "ORBIT", "IAC")


def header_check(header: dict[str, str]) -> str | None:
    """Reason to refuse a DICOM scan by its de-identified header summary (:class:`brain_cnn.scan.read.Scan`), or None."""
    modality = header.get("modality", "").strip().upper()
    if modality in _NOT_MRI:
        return f"{_NOT_MRI[modality]} image (DICOM modality {modality}); this model reads brain MRI only"
    part = header.get("body part", "").strip()
    words = [w for w in re.split(r"[^A-Z]+", part.upper()) if w]
    if any(w in _NOT_HEAD for w in words) and not any(w.startswith(_HEAD) for w in words):
        return f"a scan of the {part.lower()} (DICOM body part examined); this model reads brain MRI only"
    return None


def image_check(grey: np.ndarray, colourfulness: float = 0.0) -> str | None:
    """Reason to refuse a decoded slice before running the network, or None."""
    if colourfulness > MAX_COLOURFULNESS:
        return f"a colour image (colourfulness {colourfulness:.0f}); MRI slices are greyscale"
    if float(grey.std()) < MIN_CONTRAST:
        return "a blank image (no contrast)"
    return None


@dataclass
class Gate:
    """Fitted feature-distance gate.

    A gate may have a ``second`` part, fitted on other columns of the same features (from ``split`` on): a
    combined model's features are its map network's and then a classifier's (:mod:`brain_cnn.model.combined`).
    Either part can refuse; :meth:`distances` reports the larger of the two, in the first part's units (the
    second's distance scaled by the ratio of the thresholds), so refusing stays ``distance > threshold``.
    """

    means: np.ndarray  # (K, D) class means of training features
    precision: np.ndarray  # (D, D) inverse of the shared covariance
    threshold: float
    percentile: float
    second: Gate | None = None
    split: int = 0
    _projected: np.ndarray | None = field(default=None, init=False, repr=False)  # precision @ means, once
    _offsets: np.ndarray | None = field(default=None, init=False, repr=False)

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Smallest squared Mahalanobis distance to any class mean, per row of ``features`` (N, D) (with a second
        part, the larger of the two parts' in this part's units)."""
        if self.second is not None:
            features = np.asarray(features)
            own = self._distances(features[:, : self.split])
            other = self.second.distances(features[:, self.split :]) * (self.threshold / self.second.threshold)
            return np.maximum(own, other)
        return self._distances(features)

    def _distances(self, features: np.ndarray) -> np.ndarray:
        # (f - m)' P (f - m) = f'Pf - 2 (Pm)'f + m'Pm: one D x D product per image instead of one
        # per class. einsum, not BLAS: BLAS threads fight the inference engine's for the cores
        # (benchmarks/latency.py on a 2-core CPU: p50 32.0 ms a slice with BLAS against 10.7 ms).
        if self._projected is None:
            self._projected = np.einsum("kd,de->ke", self.means, self.precision)
            self._offsets = np.einsum("kd,kd->k", self.means, self._projected)
        features = np.asarray(features, np.float64)
        quadratic = np.einsum("nd,de,ne->n", features, self.precision, features)
        squared = quadratic[:, None] - 2 * np.einsum("nd,kd->nk", features, self._projected) + self._offsets
        return squared.min(axis=1)

    def refuse(self, features: np.ndarray) -> np.ndarray:
        return self.distances(features) > self.threshold

    def save(self, path: str | Path) -> None:
        second = {} if self.second is None else {
            "second_means": self.second.means, "second_precision": self.second.precision,
            "second_threshold": self.second.threshold, "split": self.split}
        np.savez(path, means=self.means, precision=self.precision, threshold=self.threshold,
                 percentile=self.percentile, **second)

    @classmethod
    def load(cls, path: str | Path) -> Gate:
        with np.load(path, allow_pickle=False) as arrays:
            percentile = float(arrays["percentile"])
            second = (cls(arrays["second_means"], arrays["second_precision"], float(arrays["second_threshold"]),
                          percentile) if "second_means" in arrays else None)
            return cls(arrays["means"], arrays["precision"], float(arrays["threshold"]), percentile, second,
                       int(arrays["split"]) if second is not None else 0)


def fit_gate(train_features: np.ndarray, train_labels: np.ndarray, validation_features: np.ndarray,
             percentile: float = 99.5, split: int = 0) -> Gate:
    """Fit class means and a shared covariance on training features; set the threshold on validation.

    ``split`` > 0: two parts, on the columns before and from ``split``, each with its threshold at ``percentile``
    (either refuses: see :class:`Gate`).
    """
    from sklearn.covariance import LedoitWolf

    if split:
        gate = fit_gate(train_features[:, :split], train_labels, validation_features[:, :split], percentile)
        gate.second = fit_gate(train_features[:, split:], train_labels, validation_features[:, split:], percentile)
        gate.split = split
        return gate

    train_labels = np.asarray(train_labels, dtype=int)
    classes = np.unique(train_labels)
    means = np.stack([train_features[train_labels == c].mean(axis=0) for c in classes])
    centred = train_features - means[np.searchsorted(classes, train_labels)]
    precision = LedoitWolf().fit(centred).precision_
    gate = Gate(means.astype(np.float64), precision.astype(np.float64), 0.0, percentile)
    gate.threshold = float(np.percentile(gate.distances(validation_features), percentile))
    return gate
