"""Candidate changes to ours, each timed as a whole base training step next to ours: what a
change to `keras_transformer/` would buy, measured without making it (the changes are swapped
in while a candidate's step is traced; nothing in the package is edited). A candidate is
one part of CANDIDATES or several joined with + ('f32_logits+attention_dropout0').
"""

import keras
from keras import ops

from common import models
from pipelines.special_tokens import PAD_ID

CANDIDATES = {
    "f32_logits": "the former f32 output projection and f32 log-softmax loss (before the fused loss)",
    "attention_dropout0": "no dropout on the attention weights: training attends by the fused kernel",
    "no_dropout": "dropout 0 (what dropout and its random bits cost; fused attention too)",
    "rbg_dropout": "dropout bits from XLA's RngBitGenerator (jax's rbg key) instead of Keras's "
                   "Threefry (common/models.py: rbg_dropout_call)",
}


def f32_logits(self, hidden):
    """PositionalEmbedding.logits as it was before the fused loss: both operands cast to f32,
    so the three output-projection matmuls run in f32 (TF32 on the GPU) and the loss reads f32
    logits. Swapped in while tracing a candidate only."""
    matrix = ops.cast(self.token_embedding.embeddings, "float32")
    return ops.matmul(ops.cast(hidden, "float32"), ops.transpose(matrix))


class PlainCrossEntropy(keras.losses.Loss):
    """training.MaskedSparseCrossEntropy as it was before the fused loss: f32 log-softmax over
    the whole (B, T, V) logits, autodiff keeps it for the backward pass."""

    def __init__(self, label_smoothing=0.1, pad_id=PAD_ID, name="plain_cross_entropy",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing, self.pad_id = label_smoothing, pad_id

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        picked = ops.take_along_axis(log_probs, ops.expand_dims(y_true, -1), axis=-1)[..., 0]
        eps = self.label_smoothing
        per_token = -(1.0 - eps) * picked - eps * ops.mean(log_probs, axis=-1)
        return self.over_real_tokens(per_token, y_true)

    def over_real_tokens(self, per_token, y_true):
        """Per-token losses with [PAD] zeroed, scaled so Keras's mean over every slot is the
        mean over the real tokens."""
        real = ops.cast(ops.not_equal(y_true, self.pad_id), "float32")
        slots = ops.cast(ops.size(real), "float32")
        return per_token * real * (slots / ops.maximum(ops.sum(real), 1.0))


class LogSumExpCrossEntropy(PlainCrossEntropy):
    """The same value as logsumexp(z) - (1-eps) z_y - eps mean(z) on f32 logits, unfused (the
    profile's middle form)."""

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        logits = ops.cast(y_pred, "float32")
        picked = ops.take_along_axis(logits, ops.expand_dims(y_true, -1), axis=-1)[..., 0]
        eps = self.label_smoothing
        per_token = (ops.logsumexp(logits, axis=-1) - (1.0 - eps) * picked
                     - eps * ops.mean(logits, axis=-1))
        return self.over_real_tokens(per_token, y_true)


def describe(candidate):
    """'f32_logits+no_dropout' -> its parts' descriptions joined with ' + '."""
    return " + ".join(CANDIDATES.get(part, part) for part in candidate.split("+"))


def build_candidate(config, candidate):
    """Ours with the changes named in `candidate`, compiled like the others (with the former
    loss for 'f32_logits'); returns (model, its parts: pass them to `patched_candidate` while
    tracing its train step)."""
    parts = set(candidate.split("+"))
    unknown = parts - set(CANDIDATES)
    if unknown:
        raise ValueError(f"unknown candidate parts {sorted(unknown)}; known {sorted(CANDIDATES)}")
    if "no_dropout" in parts:
        config = config.replace(dropout=0.0)
    if "attention_dropout0" in parts:
        config = config.replace(attention_dropout=0.0)
    loss = PlainCrossEntropy(0.1) if "f32_logits" in parts else None
    return models.compile_for_benchmark(models.build_ours(config), True, loss=loss), parts


class patched_candidate:
    """While tracing a candidate: PositionalEmbedding.logits swapped for f32_logits
    ('f32_logits' in `parts`), Keras's Dropout.call for models.rbg_dropout_call ('rbg_dropout')."""

    def __init__(self, parts):
        self.parts = parts

    def __enter__(self):
        from keras_transformer.layers import positional
        self.swaps = []
        if "f32_logits" in self.parts:
            self.swaps.append((positional.PositionalEmbedding, "logits", f32_logits))
        if "rbg_dropout" in self.parts:
            self.swaps.append((keras.layers.Dropout, "call", models.rbg_dropout_call))
        self.originals = [(cls, name, cls.__dict__[name]) for cls, name, _ in self.swaps]
        for cls, name, replacement in self.swaps:
            setattr(cls, name, replacement)

    def __exit__(self, *exc):
        for cls, name, original in self.originals:
            setattr(cls, name, original)
