"""Which level of the tumour map outlines the tumour best, on validation? (Dice against the expert masks.)

Scores a tumour-map network's outline (the map upsampled to the input, above
a level) against the expert masks of a run's masked validation tumours, at
levels 0.1 to 0.9, per data set; validation only, so a level chosen here can
be measured on the held-out masks afterwards.

    python experiments/map_level.py --validation runs/tumour-maps-v5/decoded-validation.npz \\
        models/brain-tumor-maps/model.keras
"""

from __future__ import annotations

import numpy as np

from validation_runs import validation_and_models

LEVELS = [round(0.1 * k, 1) for k in range(1, 10)]


def main() -> None:
    validation, models = validation_and_models(__doc__)
    import cv2

    from brain_cnn.evaluation.map_scores import dice
    from brain_cnn.model.tumour_maps import TUMOUR_MAP

    images, masks, known = validation.images, validation.masks, validation.known
    sources = np.array(validation.sources)
    keep = known & (masks.reshape(len(masks), -1).max(axis=1) > 0)
    images, masks, sources = images[keep], masks[keep, ..., 0] > 127, sources[keep]
    side = images.shape[1]
    print(f"{len(images)} masked validation tumours: "
          + ", ".join(f"{s} {int((sources == s).sum())}" for s in sorted(set(sources))))
    for path, model in models:
        maps = np.asarray(model.predict(images.astype(np.float32), batch_size=64, verbose=0)[TUMOUR_MAP])[..., 0]
        full = np.stack([cv2.resize(m, (side, side), interpolation=cv2.INTER_LINEAR) for m in maps])
        print(path)
        for source in sorted(set(sources)):
            chosen = sources == source
            scores = {level: np.mean([dice(t, f > level) for t, f in zip(masks[chosen], full[chosen])])
                      for level in LEVELS}
            best = max(scores, key=scores.get)
            print(f"  {source}: " + " ".join(f"{level}:{score:.3f}" for level, score in scores.items())
                  + f"  best {best}")


if __name__ == "__main__":
    main()
