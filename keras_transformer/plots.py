"""Pictures of what the model does: cross-attention weights and the positional encoding."""

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_transformer.layers.positional import sinusoidal_encoding  # noqa: E402


def plot_cross_attention(weights, source_tokens, output_tokens, path, title=""):
    """One heat map per head of (h, T, S) cross-attention weights; rows are generated
    tokens, columns source tokens. Returns the path written."""
    weights = np.asarray(weights)
    heads = weights.shape[0]
    columns = min(heads, 4)
    rows = -(-heads // columns)
    width = max(3.0, 0.35 * len(source_tokens) + 1.5)
    height = max(3.0, 0.35 * len(output_tokens) + 1.5)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * width, rows * height),
                                squeeze=False)
    for head, axis in enumerate(axes.flat):
        if head >= heads:
            axis.axis("off")
            continue
        axis.imshow(weights[head], cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        axis.set_xticks(range(len(source_tokens)), source_tokens, rotation=90)
        axis.set_yticks(range(len(output_tokens)), output_tokens)
        axis.set_title(f"head {head + 1}")
    figure.suptitle(title or "cross-attention (rows: generated, columns: source)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_positional_encoding(path, length=64, d_model=128):
    """The sinusoidal encoding as an image: positions down, dimensions across."""
    encoding = np.asarray(sinusoidal_encoding(length, d_model))
    figure, axis = plt.subplots(figsize=(8, 4.5))
    image = axis.imshow(encoding, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    axis.set_xlabel("dimension (sin at even, cos at odd)")
    axis.set_ylabel("position")
    axis.set_title(f"sinusoidal positional encoding, d_model={d_model}")
    figure.colorbar(image, ax=axis)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
