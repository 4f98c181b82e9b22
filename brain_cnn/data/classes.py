"""What a class folder's name means: whether it is a no-tumour class.

Data sets name their classes differently (``notumor``, ``no``, ``_NORMAL T2``);
screening, label maps, the training targets and a case's summary all ask the
same question of a name, here.
"""

from __future__ import annotations

__all__ = ["is_no_tumour"]

_NO_TUMOUR_NAMES = {"no", "no tumor", "no tumour", "notumor", "notumour", "normal", "healthy", "negative"}


def is_no_tumour(class_name: str) -> bool:
    """Whether a class folder name means "no tumour" (``notumor``, ``no``, ``_NORMAL T2``, ...)."""
    name = class_name.lower().replace("_", " ").replace("-", " ").strip()
    return name in _NO_TUMOUR_NAMES or name.startswith("normal ")
