"""The command line shared by the experiments that score tumour-map runs on a run's validation split."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def validation_and_models(doc: str) -> tuple[object, Iterator[tuple[str, object]]]:
    """Parse ``--validation NPZ MODEL...``: the run's decoded validation split (DecodedPairs) and each model
    (path, compiled network), loaded one at a time."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--validation", required=True, help="a run's decoded-validation.npz")
    parser.add_argument("models", nargs="+", help="model.keras files of runs with that validation split")
    args = parser.parse_args()

    import keras

    import brain_cnn.model.layers  # noqa: F401  (registers the custom layers)
    from brain_cnn.training.tumour_maps import _compile, read_decoded

    def models():
        for path in args.models:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
            _compile(model, 1e-3)  # the training's loss, for evaluate()
            yield path, model

    return read_decoded(args.validation), models()
