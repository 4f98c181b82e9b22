"""Keras callbacks of a training run: the epoch line, weight averaging, early stopping that survives a resume."""

from __future__ import annotations

import time

import numpy as np

__all__ = ["epoch_logger", "averaged_weights", "early_stopping"]


def epoch_logger(total_epochs: int):
    import keras

    class EpochLine(keras.callbacks.Callback):
        """One line per epoch: the figures a person watches."""

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            print(
                f"epoch {epoch + 1:3d}/{total_epochs}  loss {logs.get('loss', float('nan')):.4f}  "
                f"acc {logs.get('accuracy', float('nan')):.4f}  val_loss {logs.get('val_loss', float('nan')):.4f}  "
                f"val_acc {logs.get('val_accuracy', float('nan')):.4f}  {time.perf_counter() - self.started:.0f}s",
                flush=True,
            )

    return EpochLine()


def averaged_weights(batches, refresh_steps: int = 50):
    """Swap the optimizer's moving average of the weights in for validation and checkpoints.

    Batch-normalisation statistics belong to the weights that produced them, so
    after the swap they are re-estimated on ``refresh_steps`` training batches
    (the "BN update" of stochastic weight averaging, Izmailov et al., 2018,
    arXiv:1803.05407); otherwise averaged weights are judged with the raw
    weights' statistics.
    """
    import keras
    import tensorflow as tf

    class AveragedWeights(keras.callbacks.SwapEMAWeights):
        def resumed(self):
            """A resumed run's weights were saved at an epoch's end, with the average swapped in."""
            self._ema_weights_in_model = True

        def set_model(self, model):
            super().set_model(model)
            # Calling the model in training mode updates only the moving statistics here:
            # no gradient step is taken.
            self._refresh = tf.function(lambda x: model(x, training=True))

        def on_test_begin(self, logs=None):
            super().on_test_begin(logs)
            for x, *_ in batches.repeat().take(refresh_steps):  # repeat: a small set may have fewer batches
                self._refresh(x)

    return AveragedWeights(swap_on_epoch=True)


def early_stopping(patience: int, records: list[dict]):
    """Early stopping on validation loss that, in a resumed run, counts the epochs run before."""
    import keras

    class EarlyStopping(keras.callbacks.EarlyStopping):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if records:
                losses = [r["val_loss"] for r in records]
                self.best = min(losses)
                self.wait = len(losses) - 1 - int(np.argmin(losses))

    return EarlyStopping(monitor="val_loss", patience=patience)
