"""Shared tiny fixtures: configurations small enough that every test runs in seconds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from keras_transformer import build_transformer, preset


@pytest.fixture(autouse=True)
def _float32_policy_and_seed():
    """Every test starts from float32 and a fixed seed, whatever the last one set."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def tiny_config():
    return preset("tiny", source_vocab_size=41, target_vocab_size=43)


@pytest.fixture
def tiny_model(tiny_config):
    return build_transformer(tiny_config)


def random_tokens(rng, batch, length, vocab_size, low=4):
    """(batch, length) int32 tokens in [low, vocab_size): no padding, no reserved ids."""
    return rng.integers(low, vocab_size, size=(batch, length)).astype("int32")


@pytest.fixture(scope="session")
def small_tsv(tmp_path_factory):
    """3,000 pairs of the embedded grammar as a TSV (what a user's --data looks like)."""
    from pipelines.default_data import generate_pairs

    path = tmp_path_factory.mktemp("data") / "pairs.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in generate_pairs(3000, seed=3)),
                    encoding="utf-8")
    return path


def tiny_settings(data, **changes):
    from keras_transformer.training.settings import TrainSettings

    values = dict(data=str(data), preset="tiny", vocab_size=300, batch_tokens=1024,
                  warmup_steps=100, learning_rate_scale=0.5, epochs=6, seed=0, steps_per_epoch=0,
                  bleu_sentences=100, tune_alpha=False, overrides={"max_length": 64},
                  mixed_precision="float32")  # the same arithmetic on every CI machine
    return TrainSettings(**{**values, **changes})


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, small_tsv):
    """A run directory trained for a few seconds: enough for non-trivial translations."""
    from keras_transformer.training.job import train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    report = train(tiny_settings(small_tsv, tune_alpha=True), out, examples=0, verbose=0,
                   log=lambda *a: None)
    keras.config.set_dtype_policy("float32")
    return out, report


TOKENS = {0: "[PAD]", 1: "[UNK]", 2: "[START]", 3: "[END]", 5: "<b>", 6: "&amp;", 7: "él"}


@pytest.fixture(scope="session")
def attention_maps():
    """(AttentionMaps, the raw greedy_decode_with_attention result) of an untrained tiny
    model on one sentence; some tokens need escaping in HTML."""
    from keras_transformer.generation import decoding
    from keras_transformer.generation.attention_maps import AttentionMaps

    keras.utils.set_random_seed(3)
    model = build_transformer(preset("tiny", source_vocab_size=20, target_vocab_size=20))
    source = np.array([[2, 5, 6, 7, 8, 3]], "int32")
    decoded = decoding.greedy_decode_with_attention(model, source, 7)

    def token(i):
        return TOKENS.get(i, f"w{i}")

    maps = AttentionMaps.from_decoding("<b> &amp; él w8", source[0], decoded, token, token)
    return maps, decoded
