"""Label-smoothed softmax cross-entropy, fused: the logits stay in their own dtype (bfloat16
under mixed precision) and float32 exists only for one chunk of tokens at a time.

The plain form (`ops.log_softmax(ops.cast(logits, "float32"))`) writes the (tokens x vocabulary)
logits again in float32, keeps the float32 log-probabilities for the backward pass and builds a
float32 gradient of the same size. Here the loss and its gradient are computed chunk by chunk
from the logits with a custom gradient:

    loss_i = logsumexp(z_i) - (1 - eps) z_i[y_i] - eps * mean(z_i)
    d loss_i / d z_i = softmax(z_i) - (1 - eps) onehot(y_i) - eps / V

so the backward pass keeps nothing but the logits and returns a gradient in their dtype. Written
with `keras.ops` (`ops.custom_gradient`, `ops.map`): TensorFlow and JAX alike.
"""

from keras import ops

# Tokens per chunk: 4,096 x 37,000 float32 logits are 0.6 GB; 1,024 tokens keep a chunk's float32
# under 160 MB at that vocabulary and a few MB at the vocabularies of our recipes.
CHUNK_TOKENS = 1024


def _smoothed_loss(logits, labels, label_smoothing):
    """(n, V) float32 logits, (n,) int labels -> (n,) float32 per-token losses."""
    true_logits = ops.take_along_axis(logits, ops.expand_dims(labels, -1), axis=-1)[:, 0]
    loss = ops.logsumexp(logits, axis=-1) - (1.0 - label_smoothing) * true_logits
    if label_smoothing:
        loss = loss - label_smoothing * ops.mean(logits, axis=-1)
    return loss


def _smoothed_gradient(logits, labels, label_smoothing):
    """(n, V) float32 logits, (n,) labels -> (n, V) float32 d loss_i / d z_i."""
    vocab = logits.shape[-1]
    target = (1.0 - label_smoothing) * ops.one_hot(labels, vocab, dtype="float32")
    return ops.softmax(logits, axis=-1) - target - label_smoothing / vocab


def _over_chunks(function, arrays, chunk_tokens):
    """`function(*chunks)` over consecutive `chunk_tokens` rows of (N, ...) arrays, one chunk at a
    time (`ops.map`), results concatenated back to N rows. N may be symbolic."""
    count = ops.shape(arrays[0])[0]
    chunks = (count + chunk_tokens - 1) // chunk_tokens
    padding = chunks * chunk_tokens - count

    def split(array):  # (N, ...) -> (chunks, chunk_tokens, ...), zero rows appended
        rest = tuple(array.shape[1:])
        array = ops.concatenate([array, ops.zeros((padding,) + rest, array.dtype)], axis=0)
        return ops.reshape(array, (chunks, chunk_tokens) + rest)

    results = ops.map(lambda pieces: function(*pieces), tuple(split(a) for a in arrays))
    results = ops.reshape(results, (chunks * chunk_tokens,) + tuple(results.shape[2:]))
    return results[:count]


def label_smoothed_cross_entropy(labels, logits, label_smoothing=0.0,
                                 chunk_tokens=CHUNK_TOKENS):
    """Per-token cross-entropy against (1 - eps) onehot(y) + eps / V, from logits of any float
    dtype.

    Args:
        labels: (...) int token ids.
        logits: (..., V) float16, bfloat16 or float32; V static.
        label_smoothing: eps.
        chunk_tokens: tokens whose float32 logits exist at one time; None: all at once.
    Returns:
        (...) float32 losses; the gradient with respect to `logits` has their dtype.
    """
    eps = float(label_smoothing)
    vocab = logits.shape[-1]
    out_shape = ops.shape(labels)
    flat_labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
    flat_logits = ops.reshape(logits, (-1, vocab))
    dtype = flat_logits.dtype

    def in_chunks(function, *arrays):
        if chunk_tokens is None:
            return function(*arrays)
        return _over_chunks(function, arrays, chunk_tokens)

    @ops.custom_gradient
    def fused(z):
        def loss_of(chunk, chunk_labels):
            return _smoothed_loss(ops.cast(chunk, "float32"), chunk_labels, eps)

        def gradient(*args, upstream=None):
            upstream = args[0] if upstream is None else upstream  # (N,) float32

            def gradient_of(chunk, chunk_labels, chunk_upstream):
                grad = _smoothed_gradient(ops.cast(chunk, "float32"), chunk_labels, eps)
                return ops.cast(grad * ops.expand_dims(chunk_upstream, -1), dtype)

            return (in_chunks(gradient_of, z, flat_labels, ops.cast(upstream, "float32")),)

        return in_chunks(loss_of, z, flat_labels), gradient

    return ops.reshape(fused(flat_logits), out_shape)
