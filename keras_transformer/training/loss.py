"""The paper's training objective (section 5.4): label-smoothed cross-entropy over real tokens, and the
accuracy reported beside it.

Both are registered Keras objects, so a saved `.keras` model reloads compiled.
"""

import keras
from keras import ops
from keras.src.losses.loss import reduce_weighted_values  # Keras's own reduction, unexported

from keras_transformer.training.cross_entropy import CHUNK_TOKENS, label_smoothed_cross_entropy
from pipelines.special_tokens import PAD_ID


@keras.saving.register_keras_serializable(package="keras_transformer")
class MaskedSparseCrossEntropy(keras.losses.Loss):
    """Cross-entropy against label-smoothed targets, averaged over real (non-padding) tokens.

    Smoothed target: (1 - eps) on the true token plus eps / V on every token (eps = 0.1
    in the paper). y_true (B, T) int ids, y_pred (B, T, V) logits of any float dtype -> a
    scalar; padding positions contribute nothing to the loss or to the token count. The
    cross-entropy is the fused one (`label_smoothed_cross_entropy`): float32 for
    `chunk_tokens` tokens at a time, never for the whole (B, T, V).
    """

    def __init__(self, label_smoothing=0.1, pad_id=PAD_ID, chunk_tokens=CHUNK_TOKENS,
                 name="masked_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing
        self.pad_id = pad_id
        self.chunk_tokens = chunk_tokens

    def __call__(self, y_true, y_pred, sample_weight=None):
        # Keras's Loss.__call__ first casts y_pred to the loss dtype: the whole (B, T, V) logits
        # again in float32. Here they reach `call` in their own dtype; the rest is Keras's.
        with keras.name_scope(self.name):
            return reduce_weighted_values(self.call(y_true, y_pred), sample_weight,
                                          reduction=self.reduction, dtype=self.dtype)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        per_token = label_smoothed_cross_entropy(y_true, y_pred, self.label_smoothing,
                                                 self.chunk_tokens)
        real = ops.cast(ops.not_equal(y_true, self.pad_id), "float32")
        # Per-token values that Keras then averages over all B * T slots (and scales for
        # tf.distribute replicas): rescaled so that average is the mean over real tokens.
        slots = ops.cast(ops.size(real), "float32")
        return per_token * real * (slots / ops.maximum(ops.sum(real), 1.0))

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing,
                "pad_id": self.pad_id, "chunk_tokens": self.chunk_tokens}


@keras.saving.register_keras_serializable(package="keras_transformer")
class MaskedAccuracy(keras.metrics.Metric):
    """Fraction of real (non-padding) target tokens predicted exactly, over all batches."""

    def __init__(self, pad_id=PAD_ID, name="masked_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.pad_id = pad_id
        self.correct = self.add_variable((), initializer="zeros", name="correct")
        self.total = self.add_variable((), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        real = ops.not_equal(y_true, self.pad_id)
        hits = ops.logical_and(real, ops.equal(predicted, y_true))
        self.correct.assign_add(ops.sum(ops.cast(hits, "float32")))
        self.total.assign_add(ops.sum(ops.cast(real, "float32")))

    def result(self):
        return self.correct / ops.maximum(self.total, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id}
