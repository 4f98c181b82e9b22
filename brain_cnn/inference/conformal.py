"""Conformal prediction sets, and a screening threshold that bounds the share of missed tumours.

Split conformal prediction (Vovk et al., 2005; Angelopoulos & Bates, 2021)
on a model folder's *calibration* split: images that no network of the folder
trained on or chose its checkpoint on, with no copy of such an image
(:mod:`brain_cnn.data.carves`). On scans exchangeable with those images:

* **the prediction set** holds the true class for at least the asked share of
  scans (90 % by default). Scores are LAC's, 1 - the calibrated probability of
  the class (Sadinle et al., JASA 2019: the smallest sets on average for their
  coverage; APS and RAPS, Romano et al. 2020 and Angelopoulos et al. 2021,
  buy adaptivity with larger sets, and four classes leave little to adapt).
  Calibration is Mondrian by class (class-conditional, Vovk 2012), so a rare
  class gets its coverage on its own rather than on average with the common
  ones; classes with too few calibration images for the level share one bin.
* **screening**: "tumour possible" where the p-value of "tumour" on the
  calibration tumours' scores, 1 - P(tumour), is at least the missed rate
  alpha. For a loss that is 0 or 1 per scan this is conformal risk control
  (Angelopoulos et al., ICLR 2024) of the missed-tumour rate: at most alpha of
  exchangeable tumour scans fall below the threshold, whatever the network.

The p-values are crepes' (:class:`crepes.ConformalClassifier`), not smoothed,
so the same scan always gets the same set. The guarantee is marginal over
calibration draws and says nothing of one scan, nor of scans unlike the
calibration scans (another scanner or sequence): the out-of-distribution
gate's distance says how unlike a scan is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from crepes import ConformalClassifier

from brain_cnn.data.classes import is_no_tumour
from brain_cnn.errors import BrainCnnError

__all__ = ["CONFORMAL_FILE", "DEFAULT_COVERAGE", "DEFAULT_MISSED_RATE", "Conformal", "CoverageError",
           "check_level", "flagged", "guarantee_note", "screening_text", "set_text", "tumour_probability"]

CONFORMAL_FILE = "conformal.npz"
DEFAULT_COVERAGE = 0.9
DEFAULT_MISSED_RATE = 0.05
_POOLED = -1  # the Mondrian bin of classes with too few calibration images for the level


class CoverageError(BrainCnnError):
    """A coverage or missed-tumour rate the calibration split is too small for, or not a rate at all."""


def check_level(level: float, what: str = "coverage") -> float:
    """``level`` as a float strictly between 0 and 1, or a CoverageError saying so."""
    try:
        level = float(level)
    except (TypeError, ValueError):
        raise CoverageError(f"{what} {level!r} is not a number") from None
    if not 0.0 < level < 1.0:
        raise CoverageError(f"{what} must lie strictly between 0 and 1 (e.g. 0.9), not {level:g}")
    return level


def _enough(count: int, alpha: float) -> bool:
    """Whether ``count`` calibration scores can ever exclude a class at error rate ``alpha``: the smallest
    p-value is 1 / (count + 1)."""
    return (count + 1) * alpha > 1.0 + 1e-9


def _needed(alpha: float) -> int:
    return int(np.floor(1.0 / alpha + 1e-9))


def tumour_probability(probabilities: np.ndarray, classes: list[str]) -> np.ndarray | None:
    """P(tumour) of each row, 1 - the no-tumour classes' share; None for a model with no no-tumour class."""
    negative = [i for i, c in enumerate(classes) if is_no_tumour(c)]
    if not negative:
        return None
    return 1.0 - np.asarray(probabilities, np.float64)[:, negative].sum(axis=1)


@dataclass(frozen=True)
class Conformal:
    """A model folder's calibration: the scores of its calibration images, from which sets are made."""

    classes: tuple[str, ...]
    scores: np.ndarray  # (n,) 1 - calibrated probability of the true class, images of a known class
    labels: np.ndarray  # (n,) the true class's index
    tumour_scores: np.ndarray  # (m,) 1 - P(tumour) of the calibration tumour images, types known or not

    @classmethod
    def fit(cls, probabilities: np.ndarray, labels: np.ndarray, classes: list[str],
            tumour: np.ndarray | None = None) -> Conformal:
        """From calibrated probabilities (N, C) of the calibration images and their labels (index; -1 for a
        tumour whose type the model has no class for). ``tumour``: which images hold a tumour (by default,
        those whose label is not a no-tumour class)."""
        probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels, int)
        known = labels >= 0
        scores = 1.0 - probabilities[known, labels[known]]
        if tumour is None:
            negative = [i for i, c in enumerate(classes) if is_no_tumour(c)]
            tumour = ~np.isin(labels, negative)
        presence = tumour_probability(probabilities, list(classes))
        tumour_scores = (1.0 - presence[np.asarray(tumour, bool)]) if presence is not None else np.zeros(0)
        return cls(tuple(classes), scores, labels[known], tumour_scores)

    # -- prediction sets ------------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        return {c: int((self.labels == i).sum()) for i, c in enumerate(self.classes)}

    def _bins(self, alpha: float) -> np.ndarray:
        """Each class's Mondrian bin at error rate ``alpha``: its own index when it has enough calibration
        images, or none at all (an empty bin: never left out), else the pooled bin of the other small classes."""
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return np.array([i if n == 0 or _enough(int(n), alpha) else _POOLED for i, n in enumerate(counts)])

    def check(self, coverage: float) -> float:
        """``coverage`` checked against the calibration split's size; returns it.

        Raises:
            CoverageError: not a rate, or more than the calibration split can give (a set could never
                leave out a class).
        """
        coverage = check_level(coverage)
        alpha = 1.0 - coverage
        if not _enough(len(self.scores), alpha):
            raise CoverageError(f"a {coverage:.0%} set needs at least {_needed(alpha)} calibration images; this "
                                f"model has {len(self.scores)}. Ask for a lower coverage")
        return coverage

    def p_values(self, probabilities: np.ndarray, coverage: float) -> np.ndarray:
        """(N, C) conformal p-values of each class for each row of calibrated probabilities."""
        alpha = 1.0 - self.check(coverage)
        probabilities = np.atleast_2d(np.asarray(probabilities, np.float64))
        bins = self._bins(alpha)
        predictor = ConformalClassifier().fit(self.scores, bins=bins[self.labels])
        out = np.empty(probabilities.shape)
        for c in range(len(self.classes)):
            column = 1.0 - probabilities[:, c]
            out[:, c] = predictor.predict_p(column, bins=np.full(len(column), bins[c]), smoothing=False)
        return out

    def sets(self, probabilities: np.ndarray, coverage: float = DEFAULT_COVERAGE, strict: bool = True) -> np.ndarray:
        """(N, C) bool: which classes are in each row's set at ``coverage``. ``strict=False``: a level the
        calibration is too small for gives every class (which covers trivially) instead of a CoverageError."""
        if not strict and not _enough(len(self.scores), 1.0 - check_level(coverage)):
            return np.ones(np.atleast_2d(probabilities).shape, bool)
        return self.p_values(probabilities, coverage) >= 1.0 - coverage - 1e-12

    def prediction_set(self, probabilities: np.ndarray, coverage: float = DEFAULT_COVERAGE) -> list[str]:
        """One slice's set (its calibrated probabilities, (C,)), most likely class first; may be empty."""
        probabilities = np.asarray(probabilities, np.float64)
        chosen = self.sets(probabilities[None], coverage)[0]
        return [self.classes[i] for i in np.argsort(-probabilities, kind="stable") if chosen[i]]

    def always_in(self, coverage: float = DEFAULT_COVERAGE) -> list[str]:
        """Classes with too few calibration images (none, or too few even pooled) ever to be left out at
        ``coverage``; every class when the calibration split is too small for the level."""
        alpha = 1.0 - check_level(coverage)
        if not _enough(len(self.scores), alpha):
            return list(self.classes)
        bins = self._bins(alpha)
        counts = np.bincount(self.labels, minlength=len(self.classes))
        pooled = int(counts[bins == _POOLED].sum())
        short = not _enough(pooled, alpha)
        return [c for c, b, n in zip(self.classes, bins, counts) if n == 0 or (b == _POOLED and short)]

    # -- screening ------------------------------------------------------------------------------------------

    def screening_threshold(self, missed_rate: float = DEFAULT_MISSED_RATE) -> float:
        """The least P(tumour) flagged "tumour possible" at ``missed_rate``: at most that share of exchangeable
        tumour scans falls below it.

        Raises:
            CoverageError: no calibration tumours (a model without a no-tumour class), or too few for the rate.
        """
        alpha = check_level(missed_rate, "missed-tumour rate")
        count = len(self.tumour_scores)
        if not any(is_no_tumour(c) for c in self.classes):
            raise CoverageError("this model has no no-tumour class, so it has no screening threshold")
        if not count:
            raise CoverageError("this model has no calibration tumours to set a screening threshold on")
        if not _enough(count, alpha):
            raise CoverageError(f"a missed-tumour rate of {alpha:.0%} needs at least {_needed(alpha)} calibration "
                                f"tumours; this model has {count}")
        presence = np.sort(1.0 - self.tumour_scores)
        predictor = ConformalClassifier().fit(self.tumour_scores)
        p = predictor.predict_p(1.0 - presence, smoothing=False)
        # p rises with P(tumour): the threshold is the least calibration value whose p-value reaches alpha.
        return float(presence[np.argmax(p >= alpha - 1e-12)])

    def tumour_possible(self, probability: np.ndarray | float, missed_rate: float = DEFAULT_MISSED_RATE):
        """Whether each P(tumour) is flagged at ``missed_rate``."""
        return flagged(probability, self.screening_threshold(missed_rate))

    # -- the folder's file ----------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, classes=np.array(self.classes), scores=self.scores.astype(np.float64),
                            labels=self.labels.astype(np.int16), tumour_scores=self.tumour_scores.astype(np.float64))

    @classmethod
    def load(cls, path: str | Path) -> Conformal | None:
        """The calibration saved at ``path``; None when there is none."""
        if not Path(path).is_file():
            return None
        with np.load(path, allow_pickle=False) as saved:
            return cls(tuple(str(c) for c in saved["classes"]), saved["scores"], saved["labels"].astype(int),
                       saved["tumour_scores"])

    def summary(self, coverage: float = DEFAULT_COVERAGE, missed_rate: float = DEFAULT_MISSED_RATE) -> dict:
        """What the card says of the calibration."""
        summary = {
            "method": "split conformal, LAC scores, Mondrian by class (crepes); screening: conformal risk "
                      "control of the missed-tumour rate",
            "calibration_images": int(len(self.scores)),
            "per_class": self.counts(),
            "calibration_tumours": int(len(self.tumour_scores)),
            "coverage": coverage,
            "always_in_set": self.always_in(coverage),
            # Any level strictly below this one can be asked for (a bin of the level's size must exist at all).
            "coverage_below": round(1.0 - 1.0 / (len(self.scores) + 1), 6),
        }
        try:
            summary["screening"] = {"missed_rate": missed_rate,
                                    "threshold": round(self.screening_threshold(missed_rate), 6)}
        except CoverageError as error:
            summary["screening"] = {"missed_rate": missed_rate, "unavailable": str(error)}
        return summary


def set_text(chosen: list[str], classes: list[str], coverage: float, display=str) -> str:
    """"90 % set: glioma or meningioma"; an empty set and a set of every class said as such."""
    level = f"{coverage:.0%} set"
    if not chosen:
        return f"{level}: empty (no class fits as well as the calibration scans did: the scan is unlike them)"
    if len(chosen) == len(classes):
        return f"{level}: every class (the model cannot narrow it down at this coverage)"
    names = [display(c) for c in chosen]
    joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return f"{level}: {joined}"


def guarantee_note(coverage: float, distance: float | None = None, limit: float | None = None) -> str:
    """One sentence on what a set's guarantee means and when it does not hold, with the slice's gate distance."""
    note = (f"The set holds the true class for at least {coverage:.0%} of scans like this model's calibration "
            "scans, on average over such scans, not for this one scan in particular; it promises nothing for a "
            "scan unlike them (another scanner, sequence or patient group).")
    if distance is not None:
        where = f" (the gate refuses above {limit:.0f})" if limit is not None else ""
        note += f" This slice's distance from the training scans: {distance:.0f}{where}."
    return note


def flagged(probability: np.ndarray | float, threshold: float):
    """Whether a tumour probability is flagged "tumour possible" at a screening threshold (at or above it)."""
    return np.asarray(probability, np.float64) >= threshold - 1e-12


def screening_text(tumour_probability: float, threshold: float, missed_rate: float = DEFAULT_MISSED_RATE) -> str:
    """What the screening mode says of one slice: flagged "tumour possible" at or above the threshold."""
    bound = (f"the threshold ({threshold:.1%}) lets at most {missed_rate:.0%} of tumours on scans like the "
             "calibration scans fall below it")
    if flagged(tumour_probability, threshold):
        return f"Screening: tumour possible (tumour probability {tumour_probability:.1%}; {bound})."
    return f"Screening: below the threshold (tumour probability {tumour_probability:.1%}; {bound})."
