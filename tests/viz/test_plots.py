"""Attention figures draw exactly the weights the cached decoding computed."""

import numpy as np

from keras_transformer.viz.plots import attention_figure, plot_attention


def _images(figure):
    """Each panel's drawn array, in panel order (the colour bar has none)."""
    return [axis.images[0].get_array() for axis in figure.axes if axis.images]


def test_figure_data_equals_the_decoded_weights(attention_maps):
    maps, (_, encoder, masked, cross) = attention_maps
    sources, steps = len(maps.source_tokens), len(maps.output_tokens)
    assert maps.decoder_tokens == ["[START]"] + maps.output_tokens[:-1]
    heads, layers = maps.num_heads, maps.num_layers
    expected = [np.asarray(weights)[0, head, :rows, :columns]
                for buffers, rows, columns in ((encoder, sources, sources),
                                               (masked, steps, steps),
                                               (cross, steps, sources))
                for weights in buffers for head in range(heads)]
    images = _images(attention_figure(maps))  # every kind, every layer
    assert len(images) == len(expected) == 3 * layers * heads
    for image, weights in zip(images, expected):
        np.testing.assert_array_equal(image.data, weights)


def test_masked_self_attention_is_a_triangle_of_exact_zeros(attention_maps):
    maps, _ = attention_maps
    images = _images(attention_figure(maps, kinds=("masked",), layers=[0, -1]))
    assert len(images) == 2 * maps.num_heads
    steps = len(maps.output_tokens)
    future = np.triu(np.ones((steps, steps), bool), k=1)
    for image in images:
        assert np.all(image.data[future] == 0.0)       # exactly 0, not just small
        np.testing.assert_array_equal(np.ma.getmaskarray(image), future)  # drawn grey
        assert np.all(image.data[~future] > 0.0)
        np.testing.assert_allclose(image.data.sum(-1), 1.0, atol=1e-6)


def test_plot_attention_writes_the_chosen_layer(attention_maps, tmp_path):
    maps, _ = attention_maps
    images = _images(attention_figure(maps, kinds=("cross",), layers=[-1]))
    for head, image in enumerate(images):
        np.testing.assert_array_equal(image.data, maps.cross[-1, head])
    for name in ("cross.png", "all.svg"):
        kinds = ("cross",) if name == "cross.png" else ("self", "masked", "cross")
        assert plot_attention(maps, tmp_path / name, kinds, layers=[-1]) == tmp_path / name
    assert (tmp_path / "cross.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (tmp_path / "all.svg").read_bytes()[:1000]
