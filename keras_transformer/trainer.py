"""The train job: text -> tokenizers -> tf.data -> model.fit -> a run directory -> a report.

Needs TensorFlow (tf.data, tensorflow-text, tf.distribute), imported when a job runs.
A run killed at any moment and started again with the same settings resumes from its
last finished epoch (BackupAndRestore) and ends after the same number of epochs.
"""

import dataclasses
import time

import keras

from keras_transformer.config import preset
from keras_transformer.model import build_transformer
from keras_transformer.run_dir import SPLITS, RunDir
from keras_transformer.training import compile_transformer

STRATEGIES = ("default", "mirrored", "multi_worker")
MIXED_PRECISION = {"bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
# Splits of at most this many pairs are tokenized once and cached in memory (and shuffled whole
# each epoch); larger ones stream from disk every epoch, shuffled in a bounded buffer.
CACHED_PAIRS = 200_000


@dataclasses.dataclass
class TrainSettings:
    """What a run is made of. All fields but `epochs` must match to resume a run.

    `data`, `validation_data`, `test_data`: "default" (the embedded dataset, for `data`), a TSV or
    "SOURCE,TARGET" aligned files; held-out splits not given are carved out of `data`.
    `max_bad_fraction`: malformed lines tolerated (skipped and reported) before the job stops.
    `vocab_sample`: training pairs (a uniform sample) the vocabularies are learned from.
    """

    data: str = "default"
    validation_data: str | None = None
    test_data: str | None = None
    max_bad_fraction: float = 0.05
    vocab_sample: int = 100_000
    preset: str = "small"
    overrides: dict = dataclasses.field(default_factory=dict)
    vocab_size: int = 1000
    shared_vocab: bool = False
    batch_tokens: int = 1024
    warmup_steps: int = 1600
    learning_rate_scale: float = 1.0
    label_smoothing: float = 0.1
    seed: int = 0
    epochs: int = 10
    steps_per_epoch: int | None = None
    jit_compile: bool = False
    mixed_precision: str | None = None
    strategy: str = "default"

    def identity(self) -> dict:
        """The settings a resumed run must share (epochs and speed options may change)."""
        values = dataclasses.asdict(self)
        for free in ("epochs", "jit_compile", "strategy"):
            values.pop(free)
        return values


def distribution_strategy(name):
    """tf.distribute strategy by name: default (one device), mirrored (every local GPU, or
    the local CPU devices), multi_worker (machines described by TF_CONFIG)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose from {STRATEGIES}")


def _tf_config():
    import json
    import os

    return json.loads(os.environ.get("TF_CONFIG", "{}"))


def support_multi_worker(model, strategy):
    """Let `model.fit` train and validate under MultiWorkerMirroredStrategy.

    Keras 3 fails there in two places (keras-team/keras#20585), both outside our model:
    - Before training it builds the metrics from the first batch, which it gets by reducing
      the per-replica batch across replicas. The multi-worker strategy cannot reduce a nest
      (`Attempt to convert a value (PerReplica:...)`), and across workers it would need equal
      shapes, which bucketed batches don't have. The build needs only shapes and dtypes, so
      it gets this worker's share of the batch instead.
    - After each step it averages the logs across workers with `reduce("MEAN", axis=0)`,
      which fails on the scalar metric values ("Invalid reduction dimension 0"). The steps
      return each value as shape (1,), which that reduction turns back into a scalar.
    """
    import tensorflow as tf
    from keras import ops, tree

    def local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(local, next(batches))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    def with_shape_one(step):
        def step_with_shape_one(data):
            return {name: ops.reshape(value, (1,)) for name, value in step(data).items()}
        return step_with_shape_one

    model._maybe_symbolic_build = maybe_symbolic_build
    model.train_step = with_shape_one(model.train_step)
    model.test_step = with_shape_one(model.test_step)


def is_chief(strategy_name):
    """Whether this process writes the run directory: always, but for the non-chief workers
    of multi-worker training (worker 0 is the chief when TF_CONFIG names no chief)."""
    if strategy_name != "multi_worker":
        return True
    task = _tf_config().get("task", {})
    return task.get("type", "worker") == "chief" or (
        task.get("type", "worker") == "worker" and task.get("index", 0) == 0
        and "chief" not in _tf_config().get("cluster", {}))


def worker_count():
    """The number of processes that train together, as TF_CONFIG describes them."""
    cluster = _tf_config().get("cluster", {})
    return max(1, len(cluster.get("chief", [])) + len(cluster.get("worker", [])))


def batch_count(dataset):
    """Batches in one pass over a dataset whose cardinality tf.data can't tell (bucketed)."""
    return int(dataset.reduce(0, lambda count, _: count + 1))


def worker_directory(out):
    """A non-chief worker's scratch run directory beside `out`: it trains in step with the
    chief but must not write the chief's files."""
    from pathlib import Path

    out = Path(out)
    return out.with_name(f"{out.name}.worker{_tf_config().get('task', {}).get('index', 0)}")


def prepare_data(settings, run, log):
    """The run's cleaned splits (data/{train,validation,test}.tsv) and their sizes, plus a sample of
    the training pairs to learn the vocabulary from (None when resuming: the files exist)."""
    from pipelines import corpus, default_data, readers

    files = {split: run.split_file(split) for split in SPLITS}
    if all(path.exists() for path in files.values()):
        return {split: readers.count_lines(path) for split, path in files.items()}, None
    if settings.data == "default":
        splits = default_data.default_splits(seed=settings.seed)
        default_data.write_splits(splits, run.data)
        log(f"data: the embedded English -> Spanish dataset (seed {settings.seed})")
        return {split: len(pairs) for split, pairs in splits.items()}, splits["train"]
    prepared = corpus.prepare_corpus(
        settings.data, run.data, validation=settings.validation_data, test=settings.test_data,
        seed=settings.seed, sample_size=settings.vocab_sample,
        max_bad_fraction=settings.max_bad_fraction, log=log)
    return prepared.sizes, prepared.sample


def load_tokenizers(settings, run, sample, log):
    """The run's tokenizers: loaded when resuming, else learned from the sample of training pairs."""
    from pipelines import tokenizers

    if run.source_tokenizer.exists() and run.target_tokenizer.exists():
        return (tokenizers.SentencePieceTokenizer.load(run.source_tokenizer),
                tokenizers.SentencePieceTokenizer.load(run.target_tokenizer))
    if sample is None:
        raise FileNotFoundError(f"{run.path} holds its data but no tokenizers; use a new --out")
    began = time.perf_counter()
    log(f"learning {'a shared' if settings.shared_vocab else 'source and target'} SentencePiece "
        f"vocabular{'y' if settings.shared_vocab else 'ies'} of {settings.vocab_size} pieces "
        f"from {len(sample):,} pairs ...")
    source, target = tokenizers.build_tokenizers(sample, settings.vocab_size,
                                                 shared=settings.shared_vocab)
    log(f"  learned in {time.perf_counter() - began:.1f} s")
    source.save(run.source_tokenizer)
    target.save(run.target_tokenizer)
    return source, target


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


def callbacks(run, best_val_loss, began, log):
    return [
        FirstStepTime(began, log),
        keras.callbacks.BackupAndRestore(str(run.backup), double_checkpoint=True),
        keras.callbacks.ModelCheckpoint(str(run.best_model), monitor="val_loss",
                                        save_best_only=True,
                                        initial_value_threshold=best_val_loss),
        keras.callbacks.CSVLogger(str(run.history), append=True),
        keras.callbacks.TensorBoard(str(run.logs)),
        keras.callbacks.TerminateOnNaN(),
    ]


def best_validation_loss(run):
    """The lowest val_loss in history.csv, so a resumed run keeps the true best model."""
    if not run.history.exists():
        return None
    import csv
    with open(run.history) as file:
        losses = [float(row["val_loss"]) for row in csv.DictReader(file) if row.get("val_loss")]
    return min(losses) if losses else None


def train(settings: TrainSettings, out, examples=5, verbose="auto", log=print):
    """Train (or resume, or just report on) the run in `out`; returns the report as a dict."""
    from keras_transformer.evaluation import exact_match
    from keras_transformer.translator import Translator
    from pipelines import batching, readers
    from pipelines.normalization import normalize
    from pipelines.text_path import TextPath

    job_began = time.perf_counter()
    # first, before any TensorFlow op: multi-worker collectives are configured at startup
    strategy = distribution_strategy(settings.strategy)
    run = RunDir(out if is_chief(settings.strategy) else worker_directory(out))
    run.check_compatible(settings.identity())
    run.create()
    run.save_settings(settings.identity())
    keras.utils.set_random_seed(settings.seed)
    keras.config.set_dtype_policy(MIXED_PRECISION.get(settings.mixed_precision, "float32"))

    sizes, sample = prepare_data(settings, run, log)
    source_tokenizer, target_tokenizer = load_tokenizers(settings, run, sample, log)
    config = preset(settings.preset, **{
        "source_vocab_size": source_tokenizer.vocab_size,
        "target_vocab_size": target_tokenizer.vocab_size, **settings.overrides})
    run.save_config(config)
    text_path = TextPath(source_tokenizer, target_tokenizer, config.max_length)
    log(f"pairs: train {sizes['train']:,}, validation {sizes['validation']:,}, "
        f"test {sizes['test']:,}; vocabulary: source {source_tokenizer.vocab_size}, "
        f"target {target_tokenizer.vocab_size}")
    if sample:
        truncated = batching.count_truncated(sample, text_path)
        if truncated:
            log(f"  {truncated / len(sample):.1%} of the training pairs are longer than "
                f"max_length={config.max_length} pieces and will be truncated")

    def dataset(split, training):
        # XLA compiles once per batch shape: pad to a few fixed shapes, drop ragged remainders
        fixed = settings.jit_compile
        data = batching.make_dataset(
            run.split_file(split), text_path, batch_tokens=settings.batch_tokens,
            shuffle=training, seed=settings.seed, pad_to_bucket=fixed,
            drop_remainder=fixed and training, cache=sizes[split] <= CACHED_PAIRS,
            shuffle_buffer=min(sizes[split], batching.STREAM_SHUFFLE_BUFFER) or None)
        # with a fixed number of steps per epoch, epochs may end anywhere in the data
        return data.repeat() if training and settings.steps_per_epoch else data

    report = {"run_dir": str(run.path), "epochs": settings.epochs}
    done = run.finished_epochs()
    if done >= settings.epochs and run.best_model.exists():
        log(f"{run.path} already finished {done} epochs; reporting on its best model")
    else:
        with strategy.scope():
            model = build_transformer(config)
            compile_transformer(model, config.d_model, settings.warmup_steps,
                                settings.learning_rate_scale, settings.label_smoothing,
                                jit_compile=settings.jit_compile)
            if settings.strategy == "multi_worker":
                support_multi_worker(model, strategy)
        log(f"model: {settings.preset}, {model.count_params():,} parameters; "
            f"strategy {settings.strategy} ({strategy.num_replicas_in_sync} replicas)")
        train_data = dataset("train", training=True)
        validation_data = dataset("validation", training=False)
        steps_per_epoch, validation_steps = settings.steps_per_epoch, None
        if settings.strategy == "multi_worker":
            # Workers share out whole batches, and each step waits for every worker: all must
            # take the same number of steps, or one waits forever at the end of an epoch.
            workers = worker_count()
            if steps_per_epoch is None:
                steps_per_epoch = max(1, batch_count(train_data) // workers)
                train_data = train_data.repeat()
            validation_steps = max(1, batch_count(validation_data) // workers)
            validation_data = validation_data.repeat()
        began = time.perf_counter()
        model.fit(train_data, validation_data=validation_data, epochs=settings.epochs,
                  steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                  shuffle=False,  # the dataset shuffles itself, with the run's seed
                  callbacks=callbacks(run, best_validation_loss(run), job_began, log),
                  verbose=verbose)
        report["train_seconds"] = round(time.perf_counter() - began, 1)
        log(f"trained in {report['train_seconds']:.0f} s")
        if model.stop_training:  # TerminateOnNaN
            raise FloatingPointError("training stopped: the loss became NaN")
        run.mark_finished(settings.epochs)

    model = keras.models.load_model(run.best_model, compile=False)
    translator = Translator(model, text_path)
    test_pairs, _ = readers.load_pairs(run.split_file("test"))
    test_sources = [source for source, _ in test_pairs]
    references = [normalize(target) for _, target in test_pairs]
    began = time.perf_counter()
    hypotheses = translator.translate(test_sources)
    log(f"translated {len(test_sources)} test sentences in "
        f"{time.perf_counter() - began:.1f} s (greedy, cached)")
    report["exact_match"] = exact_match(hypotheses, references)
    for source, reference, hypothesis in list(zip(test_sources, references, hypotheses))[:examples]:
        mark = "=" if hypothesis == reference else "x"
        log(f"  {source}\n  {mark} {hypothesis}")
    log(f"test exact match {100 * report['exact_match']:.1f}% "
        f"({len(references)} sentences)")
    return report
