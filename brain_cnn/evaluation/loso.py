"""Leave-one-source-out: for each data set, train without it, then screen it.

A fold model for held-out source S trains on the first other source as its
main set (its own validation split picks the checkpoint) plus every other
source through label maps, with the copies of S (in any orientation) removed from all of
its training and validation images (the public sets overlap). It never sees
S, not even for early stopping or calibration. Then it screens all of S (tumour / no tumour,
per MRI sequence) with :func:`brain_cnn.evaluation.screening.evaluate_screening`.

The fold folders are kept; a fold whose folder already holds a trained model
with the same recipe is reused, so an interrupted protocol resumes.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from brain_cnn.data.sources import parse_source
from brain_cnn.errors import DatasetError
from brain_cnn.evaluation.findings import refresh_card
from brain_cnn.evaluation.screening import evaluate_screening
from brain_cnn.files import read_json, write_json
from brain_cnn.model.card import CARD_FILE, LOSO_FILE, load_card
from brain_cnn.reports.sentences import GOAL
from brain_cnn.training.run import train, TrainConfig

__all__ = ["LOSO_FILE", "fold_config", "run_loso"]

PROTOCOL = 3  # what a reused fold must have been trained under


def _name(source: str) -> str:
    return Path(parse_source(source).data).resolve().name


def fold_config(sources: list[str], held_out: str, out: str | Path, recipe: TrainConfig) -> TrainConfig:
    """The training run of the fold that holds out ``held_out``; a source is ``DIR`` or ``DIR=MAP.json``."""
    others = [s for s in sources if _name(s) != _name(held_out)]
    if not others:
        raise DatasetError("leave-one-source-out needs at least two sources")
    return replace(recipe, data=parse_source(others[0]).data, add_data=others[1:],
                   exclude=[parse_source(held_out).data],
                   out=str(Path(out) / f"without-{_name(held_out)}"), name=f"without-{_name(held_out)}")


def _recipe(config: TrainConfig) -> dict[str, Any]:
    """What must match for a fold folder to be reused."""
    skip = ("out", "name", "max_steps", "strategy")
    return {k: v for k, v in asdict(config).items() if k not in skip}


def _trained(config: TrainConfig) -> bool:
    card = read_json(Path(config.out) / CARD_FILE, default={})
    saved = card.get("loso_recipe")
    # Folds of protocol 1 kept the held-out source's copies in their validation split; folds of protocol 2
    # dropped plain copies only, not mirrored, flipped or rotated ones (brain_cnn.data.leakage).
    if not isinstance(saved, dict) or card.get("loso_protocol", 1) != PROTOCOL:
        return False
    # A recipe option added after the fold was trained counts as its default, so
    # folds keep being reused when the training options grow.
    defaults = _recipe(TrainConfig(data="", out=""))
    return {**defaults, **saved} == _recipe(config)


def run_loso(sources: list[str], out: str | Path, recipe: TrainConfig, held_out: list[str] | None = None,
             attach: str | Path | None = None) -> dict[str, Any]:
    """Run (or resume) the folds and write ``loso.json`` into ``out`` (and into ``attach``, a model folder)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / LOSO_FILE
    results = read_json(results_path, default={})
    folds = results.get("folds", {}) if results.get("loso_protocol", 1) == PROTOCOL else {}
    known = {_name(s): s for s in sources}
    unknown = [h for h in held_out or [] if _name(h) not in known]
    if unknown:
        raise DatasetError(f"--hold-out {', '.join(unknown)} is not among --sources")
    for source in [known[_name(h)] for h in held_out] if held_out else sources:
        config = fold_config(sources, source, out, recipe)
        if _trained(config):
            print(f"fold without {_name(source)}: reusing {config.out}", flush=True)
        else:
            print(f"fold without {_name(source)}: training {config.out}", flush=True)
            train(config)
            card = load_card(config.out)
            card.loso_recipe, card.loso_protocol = _recipe(config), PROTOCOL
            card.save(config.out)
        spec = parse_source(source)
        screening = evaluate_screening(config.out, spec.data, spec.label_map)
        # Figures on the images the fold never saw: the screening checks again, with the same notion of a copy.
        unseen = screening.get("without_training_duplicates", screening)
        folds[_name(source)] = {
            "model": config.out,
            "trained_on": [_name(config.data), *(_name(a) for a in config.add_data)],
            "overall": unseen["overall"],
            "by_sequence": unseen.get("by_sequence", {}),
            "seen_in_training": screening["seen_in_training"],
            "count": screening["count"],
        }
    results = {
        "protocol": "leave one source out: train on the other sources (copies of the held-out one, in any "
                    "orientation, removed from training and validation), screen every image of the held-out source; "
                    "figures on those without a copy in the fold's training or validation images",
        "loso_protocol": PROTOCOL,
        "goal": GOAL,
        "recipe": {k: v for k, v in _recipe(recipe).items() if k not in ("data", "add_data", "exclude")},
        "sources": [_name(s) for s in sources],
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "folds": folds,
    }
    write_json(results_path, results)
    if attach:
        write_json(Path(attach) / LOSO_FILE, results)
        refresh_card(attach)
    return results


