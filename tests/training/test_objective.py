"""Loss, metric and schedule of the paper, and model.fit on tiny data."""

from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import random_tokens
from keras_transformer import build_transformer, preset
from keras_transformer.training.loss import MaskedAccuracy, MaskedSparseCrossEntropy
from keras_transformer.training.schedule import TransformerSchedule, compile_transformer


@pytest.fixture
def one_block_config():
    """The tiny preset with one encoder and one decoder block, for the tests of the schedule and
    of saving, which a second block only makes slower to trace."""
    return preset("tiny", source_vocab_size=41, target_vocab_size=43, num_layers=1)


def _logits_and_labels(seed=0, vocab=7):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(2, 4, vocab)).astype("float32")
    labels = rng.integers(1, vocab, size=(2, 4)).astype("int32")
    labels[0, 3] = labels[1, 2:] = 0  # padding
    return logits, labels


def test_label_smoothed_loss_equals_a_hand_computation():
    logits, labels = _logits_and_labels()
    eps, vocab = 0.1, logits.shape[-1]
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    total, count = 0.0, 0
    for b in range(2):
        for t in range(4):
            if labels[b, t] == 0:
                continue
            target = np.full(vocab, eps / vocab)
            target[labels[b, t]] += 1 - eps
            total += -(target * log_probs[b, t]).sum()
            count += 1
    loss = float(MaskedSparseCrossEntropy(label_smoothing=eps)(labels, logits))
    np.testing.assert_allclose(loss, total / count, rtol=1e-5)


def test_unsmoothed_loss_equals_keras_cross_entropy_on_real_tokens():
    logits, labels = _logits_and_labels(1)
    real = labels != 0
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        labels[real], logits[real])
    np.testing.assert_allclose(MaskedSparseCrossEntropy(0.0)(labels, logits), expected,
                               rtol=1e-5)


def test_padding_positions_change_nothing():
    logits, labels = _logits_and_labels(2)
    loss = MaskedSparseCrossEntropy()(labels, logits)
    changed = logits.copy()
    changed[labels == 0] = 100.0 * np.random.default_rng(3).normal(size=changed[labels == 0].shape)
    np.testing.assert_allclose(MaskedSparseCrossEntropy()(labels, changed), loss, rtol=1e-6)
    # and extra padding columns change nothing either
    padded_labels = np.pad(labels, ((0, 0), (0, 3)))
    padded_logits = np.pad(logits, ((0, 0), (0, 3), (0, 0)))
    np.testing.assert_allclose(MaskedSparseCrossEntropy()(padded_labels, padded_logits), loss,
                               rtol=1e-6)


def test_masked_accuracy_counts_real_tokens_over_batches():
    metric = MaskedAccuracy()
    labels = np.array([[1, 2, 0]], "int32")
    one_hot = np.eye(4, dtype="float32")
    metric.update_state(labels, one_hot[[[1, 3, 0]]])        # 1 of 2 real tokens right
    metric.update_state(np.array([[3, 0, 0]], "int32"), one_hot[[[3, 1, 1]]])  # 1 of 1
    np.testing.assert_allclose(metric.result(), 2 / 3, rtol=1e-6)


@pytest.mark.parametrize("step", [0, 1, 99, 3999, 4000, 10000, 100000])
def test_schedule_matches_the_papers_formula(step):
    schedule = TransformerSchedule(d_model=512, warmup_steps=4000)
    n = step + 1  # Keras counts optimizer steps from 0, the paper from 1
    expected = 512 ** -0.5 * min(n ** -0.5, n * 4000 ** -1.5)
    np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-5)


def test_schedule_peaks_at_the_end_of_warmup():
    schedule = TransformerSchedule(d_model=64, warmup_steps=100)
    values = [float(schedule(step)) for step in range(300)]
    assert int(np.argmax(values)) == 99


def _copy_task(rng, n=64, length=6, vocab=41):
    source = random_tokens(rng, n, length, vocab)
    target = np.concatenate([np.full((n, 1), 2), source, np.full((n, 1), 3)], 1).astype("int32")
    return [source, target[:, :-1]], target[:, 1:]


@pytest.mark.parametrize("jit_compile,policy", [
    (False, "float32"), pytest.param(True, "float32", marks=pytest.mark.slow),
    (False, "mixed_bfloat16")])
def test_fit_lowers_the_loss(tiny_config, jit_compile, policy):
    keras.config.set_dtype_policy(policy)
    model = build_transformer(tiny_config)
    compile_transformer(model, tiny_config.d_model, warmup_steps=10, learning_rate_scale=3.0,
                        jit_compile=jit_compile)
    inputs, labels = _copy_task(np.random.default_rng(0))
    history = model.fit(inputs, labels, batch_size=16, epochs=4, verbose=0).history
    assert history["loss"][-1] < 0.9 * history["loss"][0]
    # the logits keep the compute dtype (the fused loss is float32 a chunk at a time)
    assert model.get_layer("logits").compute_dtype == keras.config.dtype_policy().compute_dtype
    assert np.all(np.isfinite(history["loss"]))


def test_compiled_model_reloads_and_trains_further(one_block_config, tmp_path):
    model = build_transformer(one_block_config)
    compile_transformer(model, one_block_config.d_model, warmup_steps=10, jit_compile=False)
    inputs, labels = _copy_task(np.random.default_rng(1), n=16)
    model.fit(inputs, labels, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.loss, MaskedSparseCrossEntropy)
    assert loaded.optimizer.get_config()["learning_rate"]["class_name"] == "TransformerSchedule"
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations)
    logits = model(inputs)
    np.testing.assert_allclose(loaded(inputs), logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded.loss(labels, logits), model.loss(labels, logits), rtol=1e-6)
    loaded.fit(inputs, labels, epochs=1, verbose=0)
    assert int(loaded.optimizer.iterations) == 2 * int(model.optimizer.iterations)


def test_auto_precision_is_bfloat16_only_where_it_is_native(tmp_path, monkeypatch):
    from keras_transformer.training import precision

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n\n"
                       "processor\t: 1\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
    assert {"avx2", "avx512_bf16"} <= precision.cpu_flags(cpuinfo)
    assert precision.cpu_flags(tmp_path / "missing") == set()

    monkeypatch.setattr(precision, "native_bfloat16", lambda: (True, "native"))
    assert precision.resolve_precision("auto") == ("mixed_bfloat16", "native")
    monkeypatch.setattr(precision, "native_bfloat16", lambda: (False, "emulated"))
    assert precision.resolve_precision("auto") == ("float32", "emulated")
    assert precision.resolve_precision(None)[0] == "float32"
    assert precision.resolve_precision("float16")[0] == "mixed_float16"
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        precision.resolve_precision("int8")

    # on this machine: what the CPU's flags say (no GPU in the test run)
    monkeypatch.undo()
    native, why = precision.native_bfloat16()
    if not __import__("tensorflow").config.list_physical_devices("GPU"):
        assert native == bool(precision.CPU_BFLOAT16_FLAGS & precision.cpu_flags())
        assert "CPU" in why


class StepClock:
    """A stand-in for TimeBudget whose clock is the number of steps begun, one second each."""

    def __init__(self, seconds):
        self.seconds, self.steps = seconds, 0

    @property
    def clock(self):  # TimeBudget.clock: the time every worker agrees on
        return float(self.steps)


def test_budget_cooldown_takes_the_learning_rate_to_zero_at_the_end_of_the_budget(one_block_config):
    from keras_transformer.training.callbacks import BudgetCooldown

    model = build_transformer(one_block_config)
    schedule = TransformerSchedule(one_block_config.d_model, warmup_steps=4, scale=1.0)
    compile_transformer(model, one_block_config.d_model, schedule=schedule)
    clock = StepClock(seconds=10)
    cooldown = BudgetCooldown(schedule, clock, fraction=0.4)
    assert [cooldown.factor(t) for t in (0, 5, 6, 8, 10, 12)] == pytest.approx(
        [1, 1, 1, 0.5, 0, 0])
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):  # after the cooldown set the factor
            seen.append((float(schedule.factor.numpy()),
                         float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
                         [w.copy() for w in model.get_weights()]))
            clock.steps += 1

    inputs, labels = _copy_task(np.random.default_rng(2), n=12 * 4)
    model.fit(inputs, labels, batch_size=4, epochs=1, shuffle=False, verbose=0,
              callbacks=[cooldown, Record()])
    factors = [factor for factor, _, _ in seen]
    assert factors == pytest.approx([1] * 7 + [0.75, 0.5, 0.25, 0, 0])
    for step, (factor, rate, _) in enumerate(seen):
        assert rate == pytest.approx(factor * float(TransformerSchedule(
            one_block_config.d_model, 4, 1.0)(step)), rel=1e-5)
    # at factor 0 a step leaves every weight as it was (Adam's update is scaled by the rate)
    for before, after in zip(seen[-2][2], seen[-1][2]):
        np.testing.assert_array_equal(before, after)
    assert any(not np.array_equal(a, b) for a, b in zip(seen[0][2], seen[1][2]))


def test_epoch_cooldown_counts_steps_over_bucketed_epochs_and_resumes_the_same(one_block_config):
    """Without a budget the cooldown spans the last `fraction` of the epochs' steps. With data of
    unknown length (bucketed batches) the steps per epoch are learned from the first epoch, and a
    run resumed from its optimizer's step count sets the same rates."""
    import tensorflow as tf

    from keras_transformer.training.callbacks import EpochCooldown

    (source, target_in), labels = _copy_task(np.random.default_rng(3), n=12)
    data = tf.data.Dataset.from_tensor_slices(((source, target_in), labels)).batch(4)
    data = data.filter(lambda *_: True)  # cardinality unknown, as bucketed batches
    assert int(data.cardinality()) == tf.data.UNKNOWN_CARDINALITY

    def run(model, schedule, epochs, initial_epoch=0):
        seen = []

        class Record(keras.callbacks.Callback):
            # at the end of a step: Keras begins one more batch than data of unknown length has
            def on_train_batch_end(self, batch, logs=None):
                seen.append(float(schedule.factor.numpy()))

        model.fit(data, epochs=epochs, initial_epoch=initial_epoch, verbose=0,
                  callbacks=[EpochCooldown(schedule, 4, fraction=0.5), Record()])
        return seen

    schedule = TransformerSchedule(one_block_config.d_model, warmup_steps=4)
    model = build_transformer(one_block_config)
    compile_transformer(model, one_block_config.d_model, schedule=schedule)
    whole = run(model, schedule, 4)
    # 4 epochs of 3 batches, which Keras counts as 4 optimizer iterations each (the batch that
    # finds the end of data of unknown length counts too: the schedule sees the same count).
    # The first epoch has no estimate; then factor = (1 - iteration / 16) / 0.5, seen at the
    # real steps' iterations 0-2, 4-6, 8-10, 12-14.
    assert whole == pytest.approx([1] * 7 + [7 / 8, 6 / 8, 4 / 8, 3 / 8, 2 / 8])

    schedule = TransformerSchedule(one_block_config.d_model, warmup_steps=4)
    model = build_transformer(one_block_config)
    compile_transformer(model, one_block_config.d_model, schedule=schedule)
    first = run(model, schedule, 2)
    resumed = run(model, schedule, 4, initial_epoch=2)  # a new callback, as a new session has
    assert first + resumed == pytest.approx(whole)


def test_keep_best_replaces_the_best_model_whole_or_not_at_all(tiny_model, tmp_path):
    from keras_transformer.training.callbacks import KeepBest

    best = tmp_path / "best.keras"
    keep = KeepBest(best, monitor="val_loss", mode="min")
    keep.set_model(tiny_model)
    keep.on_epoch_end(0, {"val_loss": 2.0})
    first = best.read_bytes()
    keras.models.load_model(best, compile=False)  # a whole model file
    keep.on_epoch_end(1, {"val_loss": 3.0})  # not better: left as it is
    assert best.read_bytes() == first

    def crash_mid_save(filepath, **options):
        Path(filepath).write_bytes(b"the first half of a zip")
        raise KeyboardInterrupt  # the process dies mid-write

    tiny_model.save = crash_mid_save
    with pytest.raises(KeyboardInterrupt):
        keep.on_epoch_end(2, {"val_loss": 1.0})
    assert best.read_bytes() == first  # the previous best model, whole


def test_history_is_written_whole_and_an_epoch_run_again_replaces_its_row(tmp_path, monkeypatch):
    from keras_transformer.run_dir import RunDir
    from keras_transformer.training.callbacks import EpochHistory

    run = RunDir(tmp_path)
    history = EpochHistory(run)
    history.on_epoch_end(0, {"loss": 2.0, "val_bleu": 1.5})
    history.on_epoch_end(1, {"loss": 1.0, "val_bleu": 3.0})
    history.on_epoch_end(1, {"loss": 0.9, "val_bleu": 3.5})  # epoch 1 again, after a crash
    assert [(row["epoch"], row["loss"]) for row in run.history_rows()] == [("0", "2.0"), ("1", "0.9")]
    whole = run.history.read_text()

    def crash(*args):  # the process dies between writing and renaming
        raise KeyboardInterrupt
    monkeypatch.setattr("os.replace", crash)
    with pytest.raises(KeyboardInterrupt):
        history.on_epoch_end(2, {"loss": 0.5, "val_bleu": 4.0})
    monkeypatch.undo()
    assert run.history.read_text() == whole  # the previous file, whole

    run.history.write_text(whole + "2,0.5")  # torn by someone else: the half row is skipped
    assert len(run.history_rows()) == 2
