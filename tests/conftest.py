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
