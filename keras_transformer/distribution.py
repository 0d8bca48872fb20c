"""tf.distribute for the train job: strategies by name, and what multi-worker training needs.

TensorFlow-only: imported when a job runs.
"""

import json
import os
from pathlib import Path

STRATEGIES = ("default", "mirrored", "multi_worker")


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

    check_keras_internals(model)

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


# The Keras releases whose private trainer methods `support_multi_worker` replaces were read and
# tested (tests/test_distribution.py trains two workers); another release may have moved them.
TESTED_KERAS = ("3.15",)


def check_keras_internals(model):
    """Fails loudly, before any training, where `support_multi_worker` would patch a Keras it was
    not tested with, or private methods that are not there."""
    import keras

    release = ".".join(keras.__version__.split(".")[:2])
    missing = [name for name in ("_maybe_symbolic_build", "_symbolic_build")
               if not callable(getattr(model, name, None))]
    if release not in TESTED_KERAS or missing:
        raise RuntimeError(
            f"--strategy multi_worker patches private methods of Keras's trainer "
            f"(keras-team/keras#20585) and was tested with Keras {', '.join(TESTED_KERAS)}; this "
            f"is Keras {keras.__version__}" + (f", which lacks {', '.join(missing)}" if missing
                                               else "") +
            ". Install a tested Keras (requirements.txt) or check support_multi_worker in "
            "keras_transformer/distribution.py against this release.")


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
    out = Path(out)
    return out.with_name(f"{out.name}.worker{_tf_config().get('task', {}).get('index', 0)}")
