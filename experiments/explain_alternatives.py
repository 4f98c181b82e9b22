"""Heat-map variants against the expert tumour boxes: which target layer, method or score points at the tumour?

For the 161 boxed test images, prints the pointing game, energy in the box and
IoU (as ``brain-cnn explain-eval`` defines them) of:

* Grad-CAM at the last block and at two earlier blocks (finer grids), with and
  without a mask that keeps the heat map inside the head;
* Grad-CAM and Grad-CAM++ of the contrast "this class minus no tumour";
* SmoothGrad saliency of that contrast, raw and blurred;
* Grad-CAM++ of "this tumour type against the other tumour types" (what tells
  the types apart, leaving the no-tumour class out);
* occlusion sensitivity (Zeiler & Fergus, 2014, arXiv:1311.2901; the app's
  method, :func:`brain_cnn.explain.occlusion.occlusion_map`): the drop in the class's
  log-odds when a black 32 px square covers each place (stride 8 at 160 px);
* two baselines that ignore the network: the image centre, and the brightest
  region of the head.

    python experiments/explain_alternatives.py --model models/brain-tumor-mri \\
        --boxes ../shared/data/brain-tumor-mri/boxes.csv
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import warnings

import numpy as np

# tf-keras-vis calls the model with a list where Keras expects one tensor: harmless, and once per image.
warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/brain-tumor-mri")
    parser.add_argument("--boxes", required=True)
    parser.add_argument("--limit", type=int, help="only the first N boxed images (a quick look)")
    args = parser.parse_args()

    import cv2
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    import tensorflow as tf

    from brain_cnn.scan.decode import decode_image
    from brain_cnn.explain.occlusion import occlusion_map
    from brain_cnn.evaluation.explanations import box_in_model_input, read_boxes, score_heatmap
    from brain_cnn.data.classes import is_no_tumour
    from brain_cnn.model.folder import load_model
    from brain_cnn.scan.preprocess import crop_to_head_with_offset, read_file, resize_square

    np.random.seed(0)  # SmoothGrad's noise comes from NumPy's global generator: 34.8 % and 39.1 % in two unseeded runs
    loaded = load_model(args.model)
    model, classes, size = loaded.model, loaded.card.classes, loaded.card.image_size
    normal = next(i for i, c in enumerate(classes) if is_no_tumour(c))
    gradcam = Gradcam(model, model_modifier=ReplaceToLinear(), clone=True)
    gradcam_pp = GradcamPlusPlus(model, model_modifier=ReplaceToLinear(), clone=True)
    saliency = Saliency(model, model_modifier=ReplaceToLinear(), clone=True)
    boxes = read_boxes(args.boxes)[: args.limit]
    root = Path(args.boxes).parent
    scores: dict[str, list[dict[str, float]]] = {}

    def add(name, heatmap, box):
        heatmap = np.nan_to_num(np.asarray(heatmap, np.float32))
        if heatmap.shape[0] != size:
            heatmap = cv2.resize(heatmap, (size, size))
        scores.setdefault(name, []).append(score_heatmap(heatmap, box))

    for entry in boxes:
        if entry.label not in classes:
            continue
        grey = decode_image(read_file(root / entry.path), entry.path)
        square, offset = crop_to_head_with_offset(grey)
        image = resize_square(square, size)
        box = box_in_model_input(entry, grey.shape, offset, square.shape[0], size)
        batch = image[None].astype(np.float32)
        pixels = image[..., 0].astype(np.float32)
        head = cv2.erode((pixels > 20).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(np.float32)
        target = classes.index(entry.label)

        def cam_of(visualizer, score, layer="last_conv", batch=batch):
            # The named block's output itself (tf-keras-vis would otherwise seek the convolution before it).
            return visualizer(score, batch, penultimate_layer=layer, seek_penultimate_conv_layer=False)[0]

        for layer in ("last_conv", "stage2_b", "stage1_b"):
            cam = np.asarray(cam_of(gradcam, CategoricalScore([target]), layer), np.float32)
            cam = cv2.resize(np.nan_to_num(cam), (size, size)) if cam.shape[0] != size else np.nan_to_num(cam)
            add(f"Grad-CAM {layer}", cam, box)
            add(f"Grad-CAM {layer}, head mask", cam * head, box)

        def contrast(output, c=target):
            return output[:, c] - output[:, normal]

        add("Grad-CAM of class minus no tumour", cam_of(gradcam, contrast), box)
        add("Grad-CAM++ of class minus no tumour", cam_of(gradcam_pp, contrast), box)
        others = [i for i in range(len(classes)) if i not in (target, normal)]

        def among_types(output, c=target, others=others):
            return output[:, c] - tf.reduce_logsumexp(tf.gather(output, others, axis=1), axis=1)

        add("Grad-CAM++ of type against other tumour types",
            cam_of(gradcam_pp, among_types), box)
        add("occlusion sensitivity, 32 px squares", occlusion_map(model, image[..., 0], target), box)
        smooth = np.asarray(saliency(contrast, batch, smooth_samples=20, smooth_noise=0.1)[0], np.float32)
        add("SmoothGrad of class minus no tumour", smooth, box)
        add("SmoothGrad of class minus no tumour, blurred", cv2.GaussianBlur(smooth, (0, 0), 4), box)
        centre = np.zeros((size, size), np.float32)
        centre[size // 2, size // 2] = 1
        add("baseline: image centre", cv2.GaussianBlur(centre, (0, 0), 10), box)
        add("baseline: brightest region of the head", cv2.GaussianBlur(pixels, (0, 0), 3) * head, box)

    print(f"model {args.model}; {len(next(iter(scores.values())))} boxed test images")
    print(f"{'variant':<48} pointing  energy   IoU")
    for name, values in scores.items():
        mean = {k: float(np.mean([v[k] for v in values])) for k in ("hit", "energy", "iou")}
        print(f"{name:<48} {mean['hit']:7.1%}  {mean['energy']:6.1%}  {mean['iou']:.3f}")


if __name__ == "__main__":
    main()
