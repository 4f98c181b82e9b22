"""Everything that decides a training run, in one object saved in the model card."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig:
    """Everything that decides a training run; saved in the model card."""

    data: str
    out: str
    epochs: int = 40
    image_size: int = 160
    width: int = 32
    depth: int = 4
    dropout: float = 0.3
    pooling: str = "average"  # the head: "average" or "max" (see brain_cnn.model.network)
    dilate_last_stage: bool = False  # a last block twice as fine (see brain_cnn.model.network)
    brain_only: bool = False  # the network sees the brain only, not skull, scalp or background (brain_cnn.model.layers)
    standardise: bool = False  # each slice's head to one mean and spread of grey levels (brain_cnn.model.layers)
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    # Polyak averaging of the weights (0 = off): validation, checkpoints and the shipped
    # model use the exponential moving average, which steadies the epoch-to-epoch swings.
    ema_momentum: float = 0.0
    patience: int = 10
    validation_fraction: float = 0.1
    calibration_fraction: float = 0.0  # carved from train for conformal prediction sets (brain_cnn.data.carves)
    test_fraction: float = 0.15
    seed: int = 42
    augmentation: str | None = "standard"  # None, "standard", "scanner" or "sequence" (see brain_cnn.data.pipeline)
    # "class": each class weighs the same in the loss; "source": each (data set, class) cell does, so no
    # data set's class mix (e.g. one set's normals, another's tumours) can stand in for the label
    balance: str = "class"
    strategy: str = "auto"  # see brain_cnn.training.distribute
    init_from: str | None = None  # a model folder whose weights start the run (fine-tuning)
    teacher: str | None = None  # a model folder whose probabilities blend into the targets (brain_cnn.training.distillation)
    teacher_weight: float = 0.5  # the teacher's share of each target
    teacher_temperature: float = 2.0  # softens the teacher's probabilities before blending
    split: str | None = None  # a saved split manifest to use instead of making one (e.g. from `audit --write-split`)
    add_data: list[str] = field(default_factory=list)  # more data sets for training: "DIR" or "DIR=MAP.json"
    exclude: list[str] = field(default_factory=list)  # held-out folders: their copies leave training
    max_steps: int | None = None  # steps per epoch cap, for smoke tests
    name: str | None = None
