"""The train job: text -> tokenizers -> tf.data -> model.fit -> a run directory -> a report.

Needs TensorFlow (tf.data, tensorflow-text, tf.distribute), imported when a job runs.
A run killed at any moment and started again with the same settings resumes from its last
finished epoch (BackupAndRestore) and ends after the same number of epochs, or when the time
budget, counted over every session, is spent.
"""

import dataclasses
import json
import math
import os
import shutil
import sys
import time
import warnings

import keras

from keras_transformer.config import PRESETS, preset
from keras_transformer.model import build_transformer
from keras_transformer.run_dir import SPLITS, IncompatibleRunError, RunDir, write_atomically
from keras_transformer.training import callbacks as job_callbacks
from keras_transformer.training.distribution import (
    WorkerAgreement,
    batch_count,
    data_parallel_devices,
    distribution_strategy,
    is_chief,
    process_share,
    support_multi_worker,
    worker_count,
    worker_directory,
    worker_loss_stops_the_job,
)
from keras_transformer.training.precision import resolve_precision
from keras_transformer.training.schedule import TransformerSchedule, compile_transformer
from keras_transformer.training.settings import KEEP_BEST, TrainSettings

# Splits of at most this many pairs are tokenized once and cached in memory (and shuffled whole
# each epoch); larger ones stream from disk every epoch, shuffled in a bounded buffer.
CACHED_PAIRS = 200_000



def prepare_data(settings, run, log):
    """The run's cleaned splits (data/{train,validation,test}.tsv) and their sizes, plus a sample of
    the training pairs to learn the vocabulary from (None when resuming: the files exist).
    The splits are written beside data/ and moved there once all are whole."""
    from pipelines import corpus, default_data, readers

    files = {split: run.split_file(split) for split in SPLITS}
    if all(path.exists() for path in files.values()):
        return {split: readers.count_lines(path) for split, path in files.items()}, None
    staging = run.path / ".data.partial"
    shutil.rmtree(staging, ignore_errors=True)
    if settings.data == "default":
        splits = default_data.default_splits(seed=settings.seed)
        default_data.write_splits(splits, staging)
        log(f"data: the embedded English -> Spanish dataset (seed {settings.seed})")
        sizes, sample = {split: len(pairs) for split, pairs in splits.items()}, splits["train"]
    else:
        prepared = corpus.prepare_corpus(
            settings.data, staging, validation=settings.validation_data, test=settings.test_data,
            seed=settings.seed, sample_size=settings.vocab_sample,
            max_bad_fraction=settings.max_bad_fraction, log=log)
        sizes, sample = prepared.sizes, prepared.sample
    shutil.rmtree(run.data, ignore_errors=True)  # what a crash left half-written
    os.replace(staging, run.data)
    return sizes, sample


def load_tokenizers(settings, run, sample, log):
    """The run's tokenizers: loaded when resuming, else learned from the sample of training pairs
    (drawn again from the written train split when a run stopped before saving them)."""
    from pipelines import tokenizers

    if run.source_tokenizer.exists() and run.target_tokenizer.exists():
        return run.load_tokenizers()
    if settings.init_from is not None:  # fine-tuning keeps the model's tokenizers
        source_run = RunDir(settings.init_from)
        source, target = source_run.load_tokenizers()
        source.save(run.source_tokenizer, run.source_vocabulary)
        target.save(run.target_tokenizer, run.target_vocabulary)
        if source_run.pretrained_file.exists():  # an imported model's origin and languages
            write_atomically(run.pretrained_file, source_run.pretrained_file.read_text())
        log(f"tokenizers: {source_run.path}'s")
        return source, target
    if sample is None:  # stopped after the data was written: the same sample, from its train split
        from pipelines import corpus, readers

        train = run.split_file("train")
        sample = (readers.load_pairs(train)[0] if settings.data == "default" else
                  corpus.sample_pairs(train, settings.vocab_sample, settings.seed))
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


def best_so_far(run, monitor):
    """The best `monitor` value in history.csv, so a resumed run keeps the true best model."""
    values = [float(row[monitor]) for row in run.history_rows() if row.get(monitor)]
    if not values:
        return None
    return max(values) if KEEP_BEST[monitor] == "max" else min(values)


def validation_pairs(run, count):
    """The first `count` validation pairs, references normalized as translations come out."""
    from pipelines.normalization import normalize
    from pipelines.readers import load_pairs

    pairs = load_pairs(run.split_file("validation"))[0][:count]
    return [source for source, _ in pairs], [normalize(target) for _, target in pairs]


@dataclasses.dataclass
class Job:
    """What `train` sets up before fitting: the run, its data sizes and text path, the config."""

    settings: TrainSettings
    run: RunDir
    strategy: object
    agreement: WorkerAgreement
    sizes: dict
    text_path: object
    config: object
    began: float


def set_intra_op_threads(threads) -> str:
    """Sets TensorFlow's threads within one op (0: leave its default); returns a line for the
    log, empty when there is nothing to say. On 2 cores the embedded recipe's small ops run ~10%
    faster one thread each, the pool's threads running independent ops side by side
    (docs/recipes.md)."""
    if not threads or keras.backend.backend() != "tensorflow":
        return ""
    import tensorflow as tf

    if tf.config.threading.get_intra_op_parallelism_threads() == threads:
        return f"threads: {threads} per op"
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:  # the runtime already started in this process (a notebook, a test)
        return (f"threads: TensorFlow already started in this process; {threads} per op not set "
                "(a fresh process takes it)")
    return f"threads: {threads} per op"


def set_up(settings, out, log) -> Job:
    """Resolves the settings, checks the run directory, prepares data and tokenizers."""
    from pipelines import batching
    from pipelines.text_path import TextPath

    began = time.perf_counter()
    settings = settings.resolved()
    # a fine-tuning that would change the model is refused before anything is written
    fine_tuned = None if settings.init_from is None else fine_tuned_config(
        settings, RunDir(settings.init_from))
    # first, before any TensorFlow op: threads and multi-worker collectives are set at startup
    threads_note = set_intra_op_threads(settings.intra_op_threads)
    strategy = distribution_strategy(settings.strategy)
    run = RunDir(out if is_chief(settings.strategy) else worker_directory(out))
    run.check_compatible(settings.identity())
    run.create()
    run.save_settings(settings.identity())
    keras.utils.set_random_seed(settings.seed)
    policy, why = resolve_precision(settings.mixed_precision)
    keras.config.set_dtype_policy(policy)
    log(f"precision: {policy} ({settings.mixed_precision or 'float32'}: {why})")
    if threads_note:
        log(threads_note)

    sizes, sample = prepare_data(settings, run, log)
    source_tokenizer, target_tokenizer = load_tokenizers(settings, run, sample, log)
    if settings.init_from is None:
        config = preset(settings.preset, **{
            "source_vocab_size": source_tokenizer.vocab_size,
            "target_vocab_size": target_tokenizer.vocab_size, **settings.overrides})
    else:
        config = fine_tuned
    run.save_config(config)
    text_path = TextPath(source_tokenizer, target_tokenizer, config.max_length,
                         config.source_start_token, run.language_token_id(source_tokenizer))
    log(f"pairs: train {sizes['train']:,}, validation {sizes['validation']:,}, "
        f"test {sizes['test']:,}; vocabulary: source {source_tokenizer.vocab_size}, "
        f"target {target_tokenizer.vocab_size}")
    if sample:
        truncated = batching.count_truncated(sample, text_path)
        if truncated:
            log(f"  {truncated / len(sample):.1%} of the training pairs are longer than "
                f"max_length={config.max_length} pieces and will be truncated")
    agreement = WorkerAgreement.for_strategy(settings.strategy, strategy)
    return Job(settings, run, strategy, agreement, sizes, text_path, config, began)


# what fine-tuning may change in a model's config: regularization, not the weights' shapes or
# the function they compute
FINE_TUNING_MAY_CHANGE = ("dropout", "ffn_dropout", "attention_dropout")


def fine_tuned_config(settings, source_run):
    """The config of a model fine-tuned from `source_run` (`--init-from`): that run's own, with
    the dropout asked for. A preset, `--set` or vocabulary size that would change anything else is
    refused (`IncompatibleRunError`), the differences listed."""
    source_run.require_trained()
    config = source_run.load_config()
    asked = dict(settings.overrides)
    if settings.preset is not None:
        asked = {**PRESETS[settings.preset], **asked}
    differences = {key: (getattr(config, key), value) for key, value in asked.items()
                   if key not in FINE_TUNING_MAY_CHANGE and getattr(config, key) != value}
    if settings.vocab_size is not None and settings.vocab_size != config.target_vocab_size:
        differences["vocab_size"] = (config.target_vocab_size, settings.vocab_size)
    if differences:
        listed = ", ".join(f"{key}: {old!r} there, {new!r} asked"
                           for key, (old, new) in differences.items())
        raise IncompatibleRunError(
            f"--init-from {source_run.path} keeps that model's settings and tokenizers; these "
            f"would change them: {listed}. Leave them out (only dropout may change), or train a "
            "new model without --init-from")
    return config.replace(**{key: value for key, value in asked.items()
                             if key in FINE_TUNING_MAY_CHANGE})


def is_finished(job) -> bool:
    """Whether the run already ended (all its epochs, its time budget, or early stopping): then
    the job only reports. BackupAndRestore removes its state when fit ends, so an ended run
    cannot be continued; a new --out trains a new one."""
    return job.run.status_file.exists() and job.run.best_model.exists()


def build_model(job, log):
    """The job's compiled model, in its strategy's scope, and its learning-rate schedule: new
    weights, or those of the model it fine-tunes (`--init-from`; a resumed run's own replace
    them when fit starts)."""
    settings, config = job.settings, job.config
    with job.strategy.scope():
        model = build_transformer(config)
        schedule = TransformerSchedule(config.d_model, settings.warmup_steps,
                                       settings.learning_rate_scale)
        compile_transformer(model, config.d_model, label_smoothing=settings.label_smoothing,
                            jit_compile=settings.jit_compile, schedule=schedule)
        if settings.strategy == "multi_worker":
            support_multi_worker(model, job.strategy)
        if settings.init_from is not None:
            source = RunDir(settings.init_from)
            model.set_weights(source.load_model().get_weights())
            log(f"fine-tuning {source.model_file}")
    return model, schedule


def fit(job, verbose, log) -> dict:
    """Builds, compiles and fits the model; returns what the report says of the training."""
    from pipelines import batching

    settings, run, strategy = job.settings, job.run, job.strategy

    # Epochs of a fixed number of steps (and every multi-worker run) read one endless stream,
    # in which a resumed run skips the steps already taken; epochs of a pass over the data take
    # the order of their epoch number. Either way a resumed run trains on the batches the
    # uninterrupted one would have (`callbacks.DataPosition`).
    steps_mode = bool(settings.steps_per_epoch) or settings.strategy == "multi_worker"
    position = job_callbacks.DataPosition(steps_mode)

    def dataset(split, training):
        # XLA compiles once per batch shape (JAX always compiles the step): pad to a few fixed
        # shapes, drop ragged remainders
        fixed = settings.jit_compile or keras.backend.backend() == "jax"
        return batching.make_dataset(
            run.split_file(split), job.text_path, batch_tokens=settings.batch_tokens,
            shuffle=training, seed=settings.seed, pad_to_bucket=fixed,
            drop_remainder=fixed and training, cache=job.sizes[split] <= CACHED_PAIRS,
            shuffle_buffer=min(job.sizes[split], batching.STREAM_SHUFFLE_BUFFER) or None,
            batch_multiple=data_parallel_devices(),  # data_parallel splits batches evenly
            process_share=process_share(),
            epoch=position.epoch if training and not steps_mode else None)

    model, schedule = build_model(job, log)
    replicas = (data_parallel_devices() if settings.strategy == "data_parallel"
                else strategy.num_replicas_in_sync)
    log(f"model: {settings.preset}, {model.count_params():,} parameters; "
        f"strategy {settings.strategy} ({replicas} replicas)")
    train_data = dataset("train", training=True)
    validation_data = dataset("validation", training=False)
    steps_per_epoch, validation_steps = settings.steps_per_epoch, None
    if settings.strategy == "multi_worker":
        # Workers share out whole batches, and each step waits for every worker: all must
        # take the same number of steps, or one waits forever at the end of an epoch.
        workers = worker_count()
        if steps_per_epoch is None:
            steps_per_epoch = max(1, batch_count(train_data) // workers)
        validation_steps = max(1, batch_count(validation_data) // workers)
        validation_data = validation_data.repeat()
    if steps_mode:  # epochs may end anywhere in the data
        train_data = batching.continued(train_data.repeat(), position.steps)

    budget = job_callbacks.TimeBudget(
        None if settings.max_minutes is None else 60 * settings.max_minutes, run.progress,
        job.agreement)
    if verbose == "auto":  # a bar redrawn at each step suits a terminal; a log gets a line an epoch
        verbose = 1 if sys.stdout.isatty() else 2
    began = time.perf_counter()
    with warnings.catch_warnings():
        # Keras warns at the end of every pass over data whose length tf.data cannot tell in
        # advance (bucketed batches): "Your input ran out of data". That end is expected.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        history = model.fit(train_data, validation_data=validation_data, epochs=settings.epochs,
                            steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                            shuffle=False,  # the dataset shuffles itself, with the run's seed
                            callbacks=callbacks(job, budget, schedule, position, log),
                            verbose=verbose)
    seconds = round(time.perf_counter() - began, 1)
    if budget.spent:
        log(f"the time budget of {settings.max_minutes:g} minutes is spent: training stopped "
            f"after {budget.stop_elapsed:.0f} s (this session: {budget.steps} steps)")
    log(f"trained in {seconds:.0f} s")
    losses = history.history.get("loss", [])
    if losses and not math.isfinite(losses[-1]):  # TerminateOnNaN stopped it
        raise FloatingPointError("training stopped: the loss became NaN")
    run.mark_finished(_epochs_done(run))
    return {"train_seconds": seconds, "budget_spent": budget.spent}


def _epochs_done(run):
    return len(run.history_rows())


def callbacks(job, budget, schedule, position, log):
    """The job's callbacks, in order: quality first (it adds val_bleu to the logs the others read)."""
    settings, run = job.settings, job.run
    monitor, mode = settings.keep_best, KEEP_BEST[settings.keep_best]
    found = []
    if settings.bleu_sentences:
        found.append(job_callbacks.ValidationQuality(
            job.text_path, *validation_pairs(run, settings.bleu_sentences),
            agreement=job.agreement))
    elif monitor == "val_bleu":
        raise ValueError("keep_best=val_bleu needs bleu_sentences > 0")
    found += [job_callbacks.FirstStepTime(job.began, log), budget]
    if budget.seconds and settings.cooldown:  # from the budget's clock: the chief's, if several
        found.append(job_callbacks.BudgetCooldown(schedule, budget, settings.cooldown))
    elif settings.cooldown:  # no budget: over the last part of the epochs, counted in steps
        found.append(job_callbacks.EpochCooldown(schedule, settings.epochs, settings.cooldown))
    found += [
        keras.callbacks.BackupAndRestore(str(run.backup), double_checkpoint=True),
        position,  # after BackupAndRestore: reads the restored step count
        job_callbacks.KeepBest(run.best_model, monitor=monitor, mode=mode,
                               initial_value_threshold=best_so_far(run, monitor)),
        job_callbacks.EpochHistory(run),
        keras.callbacks.TensorBoard(str(run.logs)),
        keras.callbacks.TerminateOnNaN(),
    ]
    if settings.keep_checkpoints or settings.average_last:
        found.append(job_callbacks.RollingCheckpoints(
            run.checkpoints, max(settings.keep_checkpoints, settings.average_last)))
    if settings.early_stopping:
        found.append(keras.callbacks.EarlyStopping(monitor=monitor, mode=mode,
                                                   patience=settings.early_stopping))
    return found


def report(job, examples, log) -> dict:
    """Translates the test split with the run's model: the averaged one with average_last (the
    paper's final model), reported beside the kept best one; else the kept best one."""
    from keras_transformer.generation.evaluation import score_translations
    from keras_transformer.generation.translator import Translator
    from keras_transformer.training.averaging import average_run
    from pipelines.normalization import normalize
    from pipelines.readers import load_pairs

    settings, run = job.settings, job.run
    test_pairs = load_pairs(run.split_file("test"))[0]
    sources = [source for source, _ in test_pairs]
    references = [normalize(target) for _, target in test_pairs]
    models = {"best": run.load_model(run.best_model)}
    if settings.average_last:
        models["averaged"], files = average_run(run, settings.average_last)
        log(f"averaged the last {len(files)} checkpoints into {run.averaged_model}: the run's model")
    served = "averaged" if settings.average_last else "best"
    result = {}
    for name, model in models.items():
        translator = Translator(model, job.text_path)
        began = time.perf_counter()
        hypotheses = translator.translate(sources)
        scores = score_translations(hypotheses, references)
        log(f"translated {len(sources)} test sentences in {time.perf_counter() - began:.1f} s "
            f"(greedy, cached) with the {name} model")
        if name == served:
            result.update(exact_match=scores["exact_match"], test_bleu=scores["bleu"],
                          test_chrf=scores["chrf"])
            for source, reference, hypothesis in list(zip(sources, references, hypotheses))[:examples]:
                mark = "=" if hypothesis == reference else "x"
                log(f"  {source}\n  {mark} {hypothesis}")
        else:
            result.update({f"{name}_test_bleu": scores["bleu"], f"{name}_test_chrf": scores["chrf"]})
        log(f"test ({name}): BLEU {scores['bleu']:.1f}, chrF {scores['chrf']:.1f}, exact match "
            f"{100 * scores['exact_match']:.1f}% ({len(references)} sentences)")
    return result


def tune_alpha(job, log) -> dict:
    """Chooses beam search's alpha for the run's model on the first validation sentences (those
    of val_bleu, 300 if none) and writes it to decoding.json."""
    from keras_transformer.generation.translator import Translator
    from keras_transformer.training.beam_alpha import choose_alpha

    run = job.run
    sources, references = validation_pairs(run, job.settings.bleu_sentences or 300)
    model = run.load_model()
    began = time.perf_counter()
    choice = choose_alpha(Translator(model, job.text_path), sources, references)
    write_atomically(run.decoding_file, json.dumps(choice, indent=2))
    tried = ", ".join(f"{alpha} {bleu:.2f}" for alpha, bleu in choice["validation_bleu"].items())
    log(f"beam {choice['beam_size']} on {len(sources)} validation sentences, BLEU by alpha: {tried} "
        f"(greedy {choice['greedy_validation_bleu']:.2f}; {time.perf_counter() - began:.0f} s): "
        f"alpha {choice['alpha']} stored in {run.decoding_file.name}, the default of "
        "translate, evaluate and export")
    return {"beam_alpha": choice["alpha"]}


def train(settings: TrainSettings, out, examples=5, verbose="auto", log=print):
    """Train (or resume, or just report on) the run in `out`; returns the report as a dict.
    Under multi-worker training the chief reports; every worker returns when it has, and all
    raise `distribution.WorkerLostError` if one of them is lost."""
    job = set_up(settings, out, log)
    result = {"run_dir": str(job.run.path), "epochs": job.settings.epochs}
    with worker_loss_stops_the_job(job.settings.strategy, out):
        job.agreement.check_same_settings(dataclasses.asdict(job.settings))
        # the chief's word: a worker stopped between the two marks must not train alone
        if job.agreement.from_chief([is_finished(job)])[0]:
            log(f"{job.run.path} already finished {job.run.finished_epochs()} epochs; reporting "
                "on its best model")
        else:
            result.update(fit(job, verbose, log))
        if job.settings.strategy == "data_parallel":  # the report runs on this process alone
            keras.distribution.set_distribution(None)
        if job.agreement.chief:
            result.update(report(job, examples, log))
            if job.settings.tune_alpha and not job.run.decoding_file.exists():
                result.update(tune_alpha(job, log))
        else:
            log(f"trained in step with the chief, which writes and reports the run {out}")
        # every worker ends together: one that left first would read as lost to the others
        job.agreement.barrier()
    return result
