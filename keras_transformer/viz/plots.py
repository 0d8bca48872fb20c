"""Pictures of what the model does: attention weights and the positional encoding."""

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_transformer.generation.attention_maps import KINDS  # noqa: E402
from keras_transformer.layers.positional import sinusoidal_encoding  # noqa: E402

MASKED_COLOUR = "#d9d9d9"  # cells the mask forbids: score -inf, weight exactly 0


def attention_figure(maps, kinds=tuple(KINDS), layers=None, title=""):
    """One row of panels per (kind, layer), one panel per head, one colour bar for all.

    Args:
        maps: an `AttentionMaps`.
        kinds: any of "self" (encoder), "masked" (decoder self), "cross".
        layers: layer indices (negative from the end); default all.
    Returns:
        the matplotlib Figure. Each panel's image holds exactly the weights of `maps`
        (a masked array: cells the mask forbids are drawn grey).
    """
    layers = range(maps.num_layers) if layers is None else [
        layer % maps.num_layers for layer in layers]
    panels = [(kind, layer) for kind in kinds for layer in layers]
    heads = maps.num_heads
    widest = max(len(maps.labels(kind)[1]) for kind in kinds)
    heights = [len(maps.labels(kind)[0]) for kind, _ in panels]
    cell = 0.28  # inches per token
    figure, axes = plt.subplots(
        len(panels), heads, squeeze=False, layout="constrained",
        figsize=(heads * (cell * widest + 1.3) + 1.6, sum(cell * h + 1.5 for h in heights)),
        gridspec_kw={"height_ratios": [cell * h + 1.5 for h in heights]})
    colours = plt.get_cmap("viridis").with_extremes(bad=MASKED_COLOUR)
    image = None
    for (kind, layer), row in zip(panels, axes):
        name, row_label, column_label = KINDS[kind]
        row_tokens, column_tokens = maps.labels(kind)
        forbidden = maps.masked_cells(kind)
        for head, axis in enumerate(row):
            weights = np.ma.masked_array(maps.weights(kind)[layer, head], mask=forbidden)
            image = axis.imshow(weights, cmap=colours, vmin=0.0, vmax=1.0, aspect="auto",
                                interpolation="nearest")
            axis.set_xticks(range(len(column_tokens)), column_tokens, rotation=90, fontsize=8)
            axis.set_yticks(range(len(row_tokens)), row_tokens if head == 0 else [],
                            fontsize=8)
            axis.set_title(f"head {head + 1}", fontsize=9)
            axis.set_xlabel(column_label, fontsize=8)
        row[0].set_ylabel(f"{name}\nlayer {layer + 1} of {maps.num_layers}\n{row_label}",
                          fontsize=9)
    bar = figure.colorbar(image, ax=axes, shrink=min(1.0, 4.0 / len(panels) + 0.2))
    bar.set_label("attention weight")
    if "masked" in kinds:
        bar.ax.set_xlabel("grey:\nmasked,\nexactly 0", fontsize=8)
    figure.suptitle(title or maps.sentence)
    return figure


def plot_attention(maps, path, kinds=tuple(KINDS), layers=None, title=""):
    """`attention_figure` written to `path` (PNG, SVG, PDF, by extension). Returns the path."""
    figure = attention_figure(maps, kinds, layers, title)
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
