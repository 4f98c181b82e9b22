"""Class activation maps: Grad-CAM, Grad-CAM++ and Score-CAM, through tf-keras-vis.

* Grad-CAM (Selvaraju et al., 2017, arXiv:1610.02391): gradients of the class
  score, averaged per feature map; traced once as a graph here, so the app
  draws it with the call.
* Grad-CAM++ (Chattopadhyay et al., 2018, arXiv:1710.11063).
* Score-CAM (Wang et al., 2020, arXiv:1910.01279), gradient-free.

Each explains the last convolution block
(:data:`brain_cnn.model.network.LAST_CONV_LAYER`) with the softmax replaced by
a linear output, as the papers prescribe.
"""

from __future__ import annotations

from brain_cnn.explain.base import ExplanationMethod

__all__ = ["GRAD_CAM", "GRAD_CAM_PLUS_PLUS", "SCORE_CAM", "gradcam_graph"]

GRAD_CAM = ExplanationMethod("Grad-CAM", "tf_keras_vis.gradcam", "Gradcam",
                             description="gradients of the class score, averaged per feature map")
GRAD_CAM_PLUS_PLUS = ExplanationMethod("Grad-CAM++", "tf_keras_vis.gradcam_plus_plus", "GradcamPlusPlus",
                                       description="higher-order gradient weights; sharper for several regions")
SCORE_CAM = ExplanationMethod("Score-CAM", "tf_keras_vis.scorecam", "Scorecam", {"max_N": 32},
                              description="gradient-free: masks the input with each feature map and scores it",
                              costly=True)


def gradcam_graph(linear_model, layer: str):
    """A traced function (image batch, class) -> Grad-CAM at the resolution of ``layer``, before zooming."""
    import keras
    import tensorflow as tf

    from brain_cnn.model.tumour_maps import class_output

    both = keras.Model(linear_model.inputs, [class_output(linear_model), linear_model.get_layer(layer).output])
    spec = [tf.TensorSpec((None, *linear_model.input_shape[1:]), tf.float32), tf.TensorSpec((), tf.int32)]

    @tf.function(input_signature=spec)
    def gradcam(images, class_index):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(images)
            scores, maps = both(images, training=False)
            score = scores[:, class_index]
        weights = tf.reduce_mean(tape.gradient(score, maps), axis=(1, 2), keepdims=True)
        return tf.nn.relu(tf.reduce_sum(maps * weights, axis=-1))

    return gradcam
