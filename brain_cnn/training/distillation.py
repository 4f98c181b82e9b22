"""Knowledge distillation: a teacher model's probabilities as training targets.

An ensemble is more accurate than one network but costs a pass per member.
Training one network on the ensemble's probabilities (Hinton et al., 2015,
arXiv:1503.02531) carries part of that accuracy over at one network's cost.
The teacher's probabilities are computed once, on the un-augmented training
images (flip-averaged if its card says so), and blended with the labels:
    target = (1 - weight) * label + weight * softened(teacher)

``softened`` raises the teacher's probabilities to 1/temperature and
renormalises, the softmax-with-temperature of its logits; above 1 it lets the
student see how the teacher ranks the wrong classes, which the near one-hot
probabilities a teacher gives on images it was trained on would hide.
"""

from __future__ import annotations

import numpy as np

from brain_cnn.errors import ModelFolderError
from brain_cnn.inference.predictor import predict_probabilities
from brain_cnn.model.folder import load_model

__all__ = ["soften", "teacher_probabilities", "blend"]


def soften(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / temperature)`` row-wise: temperature 1 returns ``p``, above 1 spreads it."""
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def teacher_probabilities(folder: str, images: np.ndarray, classes: list[str], image_size: int,
                          batch_size: int = 64):
    """The teacher's raw probabilities (N, K) for prepared ``uint8`` inputs, and its card.

    Raises:
        ModelFolderError: the folder is not a usable model, or it has other classes or another input size.
    """
    teacher = load_model(folder)
    if teacher.card.classes != classes:
        raise ModelFolderError(f"the teacher {folder} has classes {teacher.card.classes}, this run {classes}; "
                               "a teacher must have the same classes in the same order")
    if teacher.card.image_size != image_size:
        raise ModelFolderError(f"the teacher {folder} takes {teacher.card.image_size} px inputs, this run "
                               f"{image_size} px; give --image-size {teacher.card.image_size}")
    probabilities = predict_probabilities(teacher.model, images, batch_size, teacher.card.flip_averaging)
    return probabilities, teacher.card


def blend(labels: np.ndarray, teacher: np.ndarray, weight: float, temperature: float) -> np.ndarray:
    """Training targets: ``labels`` (N, K) and the softened ``teacher`` probabilities mixed by ``weight``."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the teacher's weight must lie in [0, 1], not {weight}")
    if temperature <= 0:
        raise ValueError(f"the distillation temperature must be positive, not {temperature}")
    return ((1.0 - weight) * labels + weight * soften(teacher, temperature)).astype(np.float32)
