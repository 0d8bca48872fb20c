"""The assembled Transformer: causality, padding invariance, size, saving."""

import keras
import numpy as np
import pytest

from conftest import random_tokens
from keras_transformer import PRESETS, TransformerConfig, build_transformer, preset


def test_inputs_and_outputs(tiny_model, tiny_config):
    assert [t.name for t in tiny_model.inputs] == ["source_tokens", "target_tokens"]
    rng = np.random.default_rng(0)
    logits = tiny_model([random_tokens(rng, 2, 7, 41), random_tokens(rng, 2, 4, 43)])
    assert logits.shape == (2, 4, tiny_config.target_vocab_size)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"


@pytest.mark.parametrize("norm_position", ["post", "pre"])
def test_future_target_tokens_never_change_earlier_logits(tiny_config, norm_position):
    model = build_transformer(tiny_config.replace(norm_position=norm_position))
    rng = np.random.default_rng(1)
    source, target = random_tokens(rng, 3, 6, 41), random_tokens(rng, 3, 8, 43)
    logits = np.asarray(model([source, target]))
    for t in range(7):
        changed = target.copy()
        changed[:, t + 1:] = random_tokens(rng, 3, 7 - t, 43)
        changed_logits = np.asarray(model([source, changed]))
        np.testing.assert_allclose(changed_logits[:, :t + 1], logits[:, :t + 1], atol=1e-5)
    # and the test can fail: changing position t does change logits at t
    changed = target.copy()
    changed[:, 3] = (changed[:, 3] + 1 - 4) % 39 + 4
    assert not np.allclose(np.asarray(model([source, changed]))[:, 3], logits[:, 3])


@pytest.mark.parametrize("options", [{}, {"norm_position": "pre"},
                                     {"position_encoding": "learned"},
                                     {"tie_output_embeddings": False}])
def test_appended_padding_never_changes_real_positions(tiny_config, options):
    model = build_transformer(tiny_config.replace(**options))
    rng = np.random.default_rng(2)
    source, target = random_tokens(rng, 2, 5, 41), random_tokens(rng, 2, 6, 43)
    logits = np.asarray(model([source, target]))
    padded_source = np.pad(source, ((0, 0), (0, 4)))
    padded_target = np.pad(target, ((0, 0), (0, 3)))
    np.testing.assert_allclose(model([padded_source, target]), logits, atol=1e-5)
    np.testing.assert_allclose(np.asarray(model([padded_source, padded_target]))[:, :6], logits,
                               atol=1e-5)


def test_sentences_padded_to_a_batch_equal_each_sentence_alone(tiny_model):
    rng = np.random.default_rng(3)
    short_source, short_target = random_tokens(rng, 1, 3, 41), random_tokens(rng, 1, 2, 43)
    long_source, long_target = random_tokens(rng, 1, 7, 41), random_tokens(rng, 1, 5, 43)
    source = np.concatenate([np.pad(short_source, ((0, 0), (0, 4))), long_source])
    target = np.concatenate([np.pad(short_target, ((0, 0), (0, 3))), long_target])
    batch_logits = np.asarray(tiny_model([source, target]))
    np.testing.assert_allclose(batch_logits[0, :2], tiny_model([short_source, short_target])[0],
                               atol=1e-5)
    np.testing.assert_allclose(batch_logits[1], tiny_model([long_source, long_target])[0],
                               atol=1e-5)


@pytest.mark.parametrize("norm_position", ["post", "pre"])
def test_fused_attention_model_equals_the_explicit_passes(tiny_config, norm_position):
    """`model(...)` attends by the fused kernel; the `*_with_attention` passes (pictures, the
    recomputation cached decoding is checked against) by the explicit one: the same logits."""
    model = build_transformer(tiny_config.replace(norm_position=norm_position))
    rng = np.random.default_rng(4)
    source, target = random_tokens(rng, 3, 6, 41), random_tokens(rng, 3, 5, 43)
    source[1, 2:], target[2, 3:] = 0, 0
    source[2] = 0  # a whole padding source
    parts = model.parts
    encoded, source_mask, _ = parts.encode_with_attention(source)
    explicit, _, _ = parts.decode_with_attention(target, encoded, source_mask)
    np.testing.assert_allclose(model([source, target]), explicit, atol=1e-5)


def test_all_padding_source_gives_finite_logits(tiny_model):
    logits = tiny_model([np.zeros((2, 5), "int32"), np.array([[2, 5], [2, 6]], "int32")])
    assert np.all(np.isfinite(logits))


def test_base_preset_has_the_papers_parameter_count():
    config = preset("base", source_vocab_size=37000, target_vocab_size=37000,
                    share_embeddings=True, tie_output_embeddings=True)
    count = build_transformer(config).count_params()
    assert abs(count - 65e6) / 65e6 < 0.05, count


def test_shared_and_separate_embeddings(tiny_config):
    shared = build_transformer(tiny_config.replace(source_vocab_size=43, share_embeddings=True))
    separate = build_transformer(tiny_config.replace(source_vocab_size=43))
    assert separate.count_params() - shared.count_params() == 43 * tiny_config.d_model
    untied = build_transformer(tiny_config.replace(tie_output_embeddings=False))
    assert untied.get_layer("output_projection").units == 43


def test_save_and_load_round_trip(tiny_config, tmp_path):
    model = build_transformer(tiny_config.replace(norm_position="pre",
                                                  position_encoding="learned"))
    rng = np.random.default_rng(4)
    batch = [random_tokens(rng, 2, 6, 41), random_tokens(rng, 2, 5, 43)]
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(loaded(batch), model(batch))


def test_presets_and_config_validation():
    assert {"tiny", "small", "base", "big"} <= set(PRESETS)
    big = preset("big")
    assert (big.num_layers, big.d_model, big.num_heads, big.d_ff) == (6, 1024, 16, 4096)
    config = preset("small", source_vocab_size=100)
    assert TransformerConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="divisible"):
        TransformerConfig(d_model=30, num_heads=4)
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")
    with pytest.raises(ValueError, match="share_embeddings"):
        TransformerConfig(source_vocab_size=5, target_vocab_size=6, share_embeddings=True)
    with pytest.raises(ValueError, match="unknown config keys"):
        TransformerConfig.from_dict({"layers": 3})


@pytest.mark.parametrize("options", [{}, {"norm_position": "pre"}, {"tie_output_embeddings": False},
                                     {"share_embeddings": True, "source_vocab_size": 43}])
def test_the_model_keeps_its_layers_and_its_graph_is_encode_then_decode(tiny_config, options, tmp_path):
    from keras_transformer.model import Transformer

    model = build_transformer(tiny_config.replace(**options))
    parts = model.parts
    assert parts.encoder_blocks[1] is model.get_layer("encoder_block_1")  # handles, not names
    assert parts.decoder_blocks[0] is model.get_layer("decoder_block_0")
    rng = np.random.default_rng(5)
    source, target = random_tokens(rng, 2, 6, 41), random_tokens(rng, 2, 5, 43)
    np.testing.assert_allclose(model([source, target]), parts.decode(target, *parts.encode(source)),
                               atol=1e-6)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(loaded, Transformer) and loaded.transformer_config == model.transformer_config
    assert loaded.parts.decoder_blocks[1] is loaded.get_layer("decoder_block_1")
    np.testing.assert_allclose(loaded.parts.decode(target, *loaded.parts.encode(source)),
                               model([source, target]), atol=1e-6)
