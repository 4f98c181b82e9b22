"""How another data set's class folders map onto a model's classes, for screening.

A label map is a JSON object ``{"description": ..., "classes": {folder: target}}``.
A folder name matches a key exactly, or after its MRI sequence suffix is
removed (``"Astrocitoma T1C+"`` matches ``"Astrocitoma"``). A target is one of

* a class name of the model's vocabulary (``glioma``, ``meningioma``,
  ``pituitary``, ``notumor``; ``glioma_tumor`` and ``glioma`` are the same
  class): a tumour of a known type, or no tumour;
* ``"tumour"``: a tumour of a type the model was not trained on (still a
  positive for screening);
* ``"no tumour"``: a normal scan;
* ``"lesion"``: an abnormality that is not a tumour (granuloma, tuberculoma).
  It counts neither as a positive nor as a negative; the share called
  "tumour" is reported on its own;
* ``"ignore"``: left out.

Maps for the public data sets are bundled (``brain_cnn/data/label_maps/<data set>.json``)
and picked by the data folder's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from brain_cnn.data.classes import is_no_tumour
from brain_cnn.errors import DatasetError
from brain_cnn.files import read_json
from brain_cnn.scan.sequences import without_sequence

__all__ = ["TUMOUR", "NO_TUMOUR", "LESION", "IGNORE", "LabelMap", "load_label_map", "bundled_label_map",
           "canonical_class"]

TUMOUR, NO_TUMOUR, LESION, IGNORE = "tumour", "no tumour", "lesion", "ignore"
_KINDS = (TUMOUR, NO_TUMOUR, LESION, IGNORE)
_BUNDLED = Path(__file__).with_name("label_maps")

def canonical_class(name: str) -> str:
    """A class name without case, separators or a "tumour" suffix: ``glioma_tumor`` -> ``glioma``."""
    if is_no_tumour(name) or is_no_tumour(without_sequence(name)):
        return "notumor"
    words = re.sub(r"[_\-\s]+", " ", name.lower()).split()
    return " ".join(w for w in words if w not in ("tumor", "tumour")) or name.lower()


class Target(NamedTuple):
    """Where one folder goes: its screening kind and, for a known type, the model class."""

    kind: str  # one of TUMOUR, NO_TUMOUR, LESION, IGNORE
    model_class: str | None = None


@dataclass(frozen=True)
class LabelMap:
    description: str
    classes: dict[str, str]  # folder (or folder without sequence) -> target
    source: str = ""  # the file it came from

    def target(self, folder: str, model_classes: list[str]) -> Target:
        """The target of one class folder, given the model's classes.

        Raises:
            DatasetError: the map does not cover the folder, or names a class the model lacks.
        """
        value = self.classes.get(folder, self.classes.get(without_sequence(folder)))
        if value is None:
            raise DatasetError(f"the label map {self.source or self.description!r} does not say what "
                               f"{folder!r} is; add it to the map's \"classes\"")
        value = value.strip()
        if value.lower() in _KINDS:
            return Target(value.lower())
        by_canonical = {canonical_class(c): c for c in model_classes}
        wanted = canonical_class(value)
        if wanted == "notumor":
            return Target(NO_TUMOUR, by_canonical.get("notumor"))
        # A tumour type the model does not know is still a tumour for screening.
        return Target(TUMOUR, by_canonical.get(wanted))


def load_label_map(path: str | Path) -> LabelMap:
    """Read and check a label map file.

    Raises:
        DatasetError: missing file, bad JSON or a malformed map.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"label map not found: {path}")
    raw = read_json(path, error=DatasetError)
    classes = raw.get("classes") if isinstance(raw, dict) else None
    if not isinstance(classes, dict) or not classes or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in classes.items()
    ):
        raise DatasetError(f"label map {path} needs a \"classes\" object of folder name -> target")
    return LabelMap(str(raw.get("description", path.stem)), dict(classes), str(path))


def bundled_label_map(data_root: str | Path) -> LabelMap | None:
    """The bundled map for a public data set, chosen by the data folder's name; None if there is none."""
    path = _BUNDLED / f"{Path(data_root).resolve().name}.json"
    return load_label_map(path) if path.is_file() else None
