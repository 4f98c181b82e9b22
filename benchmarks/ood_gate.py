"""How the out-of-distribution gate answers images that are not brain MRI slices.

Prints, for each image (scikit-image's bundled photographs and documents, and
images drawn by benchmarks/nonbrain.py), whether the model refused it and why, and
the gate's false-refusal rate on the real test scans from evaluation.json.

    python benchmarks/ood_gate.py --model models/brain-tumor-mri
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "models" / "brain-tumor-mri"))
    args = parser.parse_args()

    from nonbrain import non_brain_images

    from brain_cnn.inference.predictor import Predictor

    predictor = Predictor(args.model)
    refused = 0
    images = non_brain_images()
    for name, data in images.items():
        result = predictor.predict_bytes(data, name)
        if result["label"] is None:
            refused += 1
            print(f"refused   {name:<32} {result['cannot_assess']}")
        else:
            print(f"ACCEPTED  {name:<32} as {result['label']} ({result['probabilities'][result['label']]:.0%})")
    print(f"\nnon-brain images refused: {refused} of {len(images)} ({refused / len(images):.0%})")
    report = json.loads((Path(args.model) / "evaluation.json").read_text())
    for split, result in report["splits"].items():
        if "gate" in result:
            gate = result["gate"]
            print(f"real {split} scans refused: {gate['refused']} of {result['count']} ({gate['refused_rate']:.2%}); "
                  f"accuracy on the accepted {gate['accuracy_on_accepted']:.2%}")


if __name__ == "__main__":
    main()
