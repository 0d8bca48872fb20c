"""Keras callbacks of the train job: a time budget and a learning-rate cooldown at its end,
translation quality on the validation set, the best model kept (replaced whole), rolling
checkpoints for averaging, and the time to the first step.

Each one does one thing during `model.fit`; the run directory's file names come from `RunDir`.
"""

import json
import os
import time
from pathlib import Path

import keras

from keras_transformer.run_dir import write_atomically


class FirstStepTime(keras.callbacks.Callback):
    """Logs once how long the job took to finish its first training step (data preparation,
    vocabulary learning, graph tracing and the step itself): what a user waits before training."""

    def __init__(self, began, log):
        super().__init__()
        self.began, self.log, self.done = began, log, False

    def on_train_batch_end(self, batch, logs=None):
        if not self.done:
            self.done = True
            self.log(f"first training step done {time.perf_counter() - self.began:.1f} s after "
                     "the job started")


class TimeBudget(keras.callbacks.Callback):
    """Stops training at the end of the step during which `seconds` of training ran out (or right
    after the validation of an epoch, if they ran out then).

    The time counted is the wall time of `fit` (steps, and the validation of each epoch), summed
    over every session of the run: it is written to `progress_file` at each epoch end (when
    BackupAndRestore saves), so a resumed run only gets what is left. Validation still runs
    after the last step, so the best model can be the last one.

    Under multi-worker training the clock is the chief's, sent to every worker after each step
    by `agreement` (a `distribution.WorkerAgreement`): all workers read the same time, so all
    stop after the same step, and a cooldown reading `clock` sets the same rate on all.
    """

    def __init__(self, seconds, progress_file, agreement=None):
        super().__init__()
        from keras_transformer.training.distribution import WorkerAgreement

        self.seconds, self.progress_file = seconds, progress_file
        self.agreement = agreement or WorkerAgreement()
        self.used = self.load(progress_file)["train_seconds"]
        self.spent = False
        self.steps = 0
        self.last_step_seconds = self.last_validation_seconds = 0.0
        self.clock = self.used

    @staticmethod
    def load(progress_file) -> dict:
        """What earlier sessions used: {"train_seconds", "budget_spent", ...}."""
        if progress_file.exists():
            return json.loads(progress_file.read_text())
        return {"train_seconds": 0.0, "budget_spent": False}

    def elapsed(self):
        """This worker's own clock: seconds of training, earlier sessions included."""
        return self.used + time.perf_counter() - self.began

    def tick(self):
        """Reads the clock every worker agrees on into `clock` (with a budget only: without
        one nothing reads it, and multi-worker runs skip the all-reduce)."""
        if self.seconds is not None:
            self.clock = self.agreement.from_chief([self.elapsed()])[0]

    def on_train_begin(self, logs=None):
        self.began = self.step_ended = time.perf_counter()
        self.tick()

    def on_train_batch_end(self, batch, logs=None):
        # a step's length: from the previous check to this one, the batch's fetch and the
        # other callbacks included, so that a budget crossed during it is overshot by less
        self.steps += 1
        now = time.perf_counter()
        self.last_step_seconds, self.step_ended = now - self.step_ended, now
        self.tick()
        self._stop_if_spent("step")

    def on_epoch_end(self, epoch, logs=None):
        # validation (and val_bleu) ran after the epoch's last step
        now = time.perf_counter()
        self.last_validation_seconds, self.step_ended = now - self.step_ended, now
        self.tick()
        self._stop_if_spent("validation")
        self.save()

    def _stop_if_spent(self, during):
        if self.seconds is not None and not self.spent and self.clock >= self.seconds:
            self.spent, self.stopped_during = True, during
            self.stop_elapsed = self.clock
            self.model.stop_training = True

    def save(self):
        used = self.clock if self.seconds is not None else self.elapsed()
        progress = {"train_seconds": round(used, 3), "budget_spent": self.spent,
                    "budget_seconds": self.seconds}
        if self.spent:  # when it stopped (after a step, or after validation), the last step's length
            progress.update(stopped_at_seconds=round(self.stop_elapsed, 3),
                            stopped_after=self.stopped_during,
                            last_step_seconds=round(self.last_step_seconds, 3),
                            last_validation_seconds=round(self.last_validation_seconds, 3))
        write_atomically(self.progress_file, json.dumps(progress, indent=2))


class BudgetCooldown(keras.callbacks.Callback):
    """Takes the learning rate linearly to zero over the last `fraction` of a time budget.

    Before that the schedule (a `training.TransformerSchedule`) runs as it is; from then on, at
    each step, its `factor` is set to the fraction of the cooldown left, so a run trained to a
    budget ends at a small learning rate instead of the middle of its schedule (budget-aware
    decay: Li et al., ICLR 2020, "Budgeted training"; the cooldown of warmup-stable-decay
    schedules). Put it after `budget`, the `TimeBudget` whose clock (resumed sessions
    included, the chief's under multi-worker training) it reads.
    """

    def __init__(self, schedule, budget, fraction):
        super().__init__()
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"the cooldown fraction must be in (0, 1], got {fraction}")
        self.schedule, self.budget, self.fraction = schedule, budget, fraction

    def factor(self, elapsed):
        """The learning-rate factor after `elapsed` seconds of the budget."""
        left = 1.0 - elapsed / self.budget.seconds
        return min(1.0, max(0.0, left / self.fraction))

    def on_train_batch_begin(self, batch, logs=None):
        factor = self.factor(self.budget.clock)
        if factor != float(self.schedule.factor.numpy()):
            self.schedule.factor.assign(factor)


class EpochCooldown(keras.callbacks.Callback):
    """Takes the learning rate linearly to zero over the last `fraction` of a run's `epochs`: the
    cooldown of a run without a time budget (`BudgetCooldown` counts seconds, this counts steps).

    Progress is the optimizer's step count over the run's expected steps, `epochs` times the
    steps of an epoch: the mean of the finished epochs (bucketed batches: a pass over the data
    is known only once made), in the first epoch `fit`'s `steps_per_epoch` if given. The first epoch
    runs at the schedule's rate unless the cooldown covers part of it. The step count is
    restored with the optimizer when a run resumes, so a resumed run sets the same rates.
    """

    def __init__(self, schedule, epochs, fraction):
        super().__init__()
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"the cooldown fraction must be in (0, 1], got {fraction}")
        self.schedule, self.epochs, self.fraction = schedule, epochs, fraction
        self.steps_per_epoch = None

    def factor(self, progress):
        """The learning-rate factor after `progress` (0 to 1) of the run."""
        return min(1.0, max(0.0, (1.0 - progress) / self.fraction))

    def on_epoch_begin(self, epoch, logs=None):
        # the optimizer's count is read once an epoch (a read each step would wait for the step)
        self.done = int(self.model.optimizer.iterations.numpy())
        if epoch:  # the mean of the epochs done, in this session or before it (Keras's own count
            # of a pass over data of unknown length includes the batch that found the end)
            self.steps_per_epoch = self.done / epoch
        else:
            self.steps_per_epoch = self.params.get("steps") or None

    def on_train_batch_begin(self, batch, logs=None):
        progress = 0.0  # the first pass over bucketed data: no estimate yet
        if self.steps_per_epoch is not None:
            progress = self.done / (self.steps_per_epoch * self.epochs)
        factor = self.factor(progress)
        if factor != self.schedule_factor:
            self.schedule.factor.assign(factor)
            self.schedule_factor = factor

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1

    def on_train_begin(self, logs=None):
        self.schedule_factor = float(self.schedule.factor.numpy())


class ValidationQuality(keras.callbacks.Callback):
    """At each epoch end, translates the validation sources (greedy, with the key/value cache) and
    adds `val_bleu` and `val_chrf` (sacrebleu) to the epoch's logs, for history.csv, TensorBoard,
    KeepBest and EarlyStopping: put it before them in the callback list.

    Under multi-worker training only the chief translates, and `agreement` sends its scores to
    the other workers, so all keep the same best model and stop early at the same epoch.

    Args:
        text_path: the model's `TextPath`.
        sources, references: the validation pairs scored (references normalized as the outputs).
        agreement: a `distribution.WorkerAgreement` (default: one process).
    """

    def __init__(self, text_path, sources, references, batch_size=64, agreement=None):
        super().__init__()
        from keras_transformer.training.distribution import WorkerAgreement

        self.text_path, self.sources, self.references = text_path, sources, references
        self.batch_size = batch_size
        self.agreement = agreement or WorkerAgreement()
        self.translator = self.float32_model = None

    def scores(self):
        from keras_transformer.generation.evaluation import score_translations
        from keras_transformer.generation.translator import Translator
        from keras_transformer.model import float32_copy

        # in float32, as the kept model translates once loaded (`RunDir.load_model`): a
        # mixed-precision model's weights are copied into a float32 twin at each epoch end (on
        # this process alone under multi-process JAX: only the chief translates)
        self.float32_model = float32_copy(self.model, self.float32_model,
                                          process_local=self.agreement.jax_processes)
        if self.translator is None:  # traced once; it reads the weights as they are now
            self.translator = Translator(self.float32_model, self.text_path)
        hypotheses = self.translator.translate(self.sources, batch_size=self.batch_size)
        scores = score_translations(hypotheses, self.references)
        return [scores["bleu"], scores["chrf"]]

    def on_epoch_end(self, epoch, logs=None):
        bleu, chrf = self.agreement.from_chief(
            self.scores() if self.agreement.chief else [0.0, 0.0])
        if logs is not None:
            logs["val_bleu"], logs["val_chrf"] = bleu, chrf


class KeepBest(keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint(save_best_only=True)` whose file is replaced whole: the model is saved
    beside it, then renamed over it, so a crash mid-save leaves the previous best model."""

    def __init__(self, filepath, **options):
        self.final_path = Path(filepath)
        super().__init__(str(self.final_path.with_name(f".partial.{self.final_path.name}")),
                         save_best_only=True, **options)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        partial = Path(self.filepath)
        if partial.exists():
            os.replace(partial, self.final_path)


class DataPosition(keras.callbacks.Callback):
    """Where the training data stream stands, so that a resumed run trains on the batches the
    uninterrupted run would have: `steps`, the optimizer's step count once BackupAndRestore has
    restored it (an endless stream skips that many batches, `batching.continued`), and `epoch`,
    the epoch about to run (a pass over the data takes (seed, epoch)'s order,
    `batching.make_dataset(epoch=...)`). Both are tf.Variables the datasets read when an
    iteration begins. Put it after BackupAndRestore."""

    def __init__(self, steps_mode):
        super().__init__()
        import tensorflow as tf

        self.steps_mode = steps_mode
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)

    def on_train_begin(self, logs=None):
        if self.steps_mode:
            self.steps.assign(int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch.assign(epoch)


class EpochHistory(keras.callbacks.Callback):
    """history.csv, one row per epoch (its logs: losses, accuracy, val_bleu, ...), rewritten whole
    at each epoch end (`RunDir.write_history`): a crash mid-write leaves the previous file, never a
    torn row (Keras's CSVLogger appends). An epoch run again after a crash replaces its row."""

    def __init__(self, run):
        super().__init__()
        self.run = run

    def on_epoch_end(self, epoch, logs=None):
        rows = [row for row in self.run.history_rows() if int(row["epoch"]) != epoch]
        rows.append({"epoch": epoch, **{key: float(value) for key, value in (logs or {}).items()}})
        self.run.write_history(sorted(rows, key=lambda row: int(row["epoch"])))


class RollingCheckpoints(keras.callbacks.Callback):
    """Saves the weights at each epoch end as `folder/epoch_NNNN.weights.h5` and keeps the last
    `keep` of them: what checkpoint averaging (`keras_transformer.training.averaging`) reads."""

    def __init__(self, folder, keep):
        super().__init__()
        self.folder, self.keep = folder, keep

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        self.model.save_weights(self.folder / f"epoch_{epoch + 1:04d}.weights.h5")
        for old in sorted(self.folder.glob("epoch_*.weights.h5"))[:-self.keep]:
            old.unlink()
