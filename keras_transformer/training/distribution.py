"""Distribution for the train job: strategies by name, and what multi-worker training needs.

`mirrored` and `multi_worker` are tf.distribute (TensorFlow backend); `data_parallel` is
`keras.distribution.DataParallel` (JAX backend). Imported when a job runs.
"""

import contextlib
import json
import os
from pathlib import Path

STRATEGIES = ("default", "mirrored", "multi_worker", "data_parallel")
# which backend each strategy runs on, and what to use on the other one
BACKEND_OF = {"mirrored": "tensorflow", "multi_worker": "tensorflow", "data_parallel": "jax"}
INSTEAD = {"mirrored": "data_parallel", "multi_worker": "data_parallel",
           "data_parallel": "mirrored (one machine) or multi_worker (several)"}


def check_backend(name, backend):
    """Raises a clear error where strategy `name` does not run on Keras backend `backend`."""
    wanted = BACKEND_OF.get(name)
    if wanted is not None and wanted != backend:
        raise ValueError(
            f"--strategy {name} runs on the {wanted} backend, and this is KERAS_BACKEND={backend}: "
            f"use --strategy {INSTEAD[name]} on {backend}, or KERAS_BACKEND={wanted}")


def distribution_strategy(name):
    """tf.distribute strategy by name: default (one device), mirrored (every local GPU, or
    the local CPU devices), multi_worker (machines described by TF_CONFIG). data_parallel
    (JAX) sets `keras.distribution.DataParallel` over every device (of every process, when
    KERAS_DISTRIBUTION_NUM_PROCESSES names several), and trains under the default
    tf.distribute strategy (tf.data only feeds it)."""
    import tensorflow as tf

    check_backend(name, keras_backend())
    if name == "data_parallel":
        import keras

        if jax_processes() > 1:  # jax.distributed, from the KERAS_DISTRIBUTION_* variables
            keras.distribution.initialize()
        # every process feeds its own rows of each batch (`process_share`): no tf.data sharding
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(auto_shard_dataset=False))
        return tf.distribute.get_strategy()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose from {STRATEGIES}")


def keras_backend():
    import keras

    return keras.backend.backend()


def jax_processes():
    """Processes of a multi-process JAX run (KERAS_DISTRIBUTION_NUM_PROCESSES, as
    `keras.distribution.initialize` reads it), 1 if it names none."""
    return int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES") or 1)


def process_share():
    """(this process's index, process count) of a multi-process `data_parallel` run, else None:
    every process reads the same batches and keeps its rows of each."""
    if keras_backend() != "jax" or jax_processes() == 1:
        return None
    import jax

    return jax.process_index(), jax.process_count()


def data_parallel_devices():
    """How many devices `--strategy data_parallel` splits each batch across (1 without it)."""
    import keras

    distribution = keras.distribution.distribution()
    return len(distribution.device_mesh.devices.flat) if distribution is not None else 1


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
            "keras_transformer/training/distribution.py against this release.")


def is_chief(strategy_name):
    """Whether this process writes the run directory: always, but for the non-chief workers
    of multi-worker training (worker 0 is the chief when TF_CONFIG names no chief) and the
    processes but 0 of multi-process JAX."""
    if strategy_name == "data_parallel":
        return (process_share() or (0, 1))[0] == 0
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
    share = process_share()
    index = share[0] if share else _tf_config().get("task", {}).get("index", 0)
    return out.with_name(f"{out.name}.worker{index}")


class WorkerAgreement:
    """What every worker of a multi-worker run must decide alike, decided once for all.

    Each call is one collective, which every worker must make at the same point of training,
    in the same order: a tf.distribute all-reduce (SUM over every replica of every worker) under
    `multi_worker`, JAX's `broadcast_one_to_all` under multi-process `data_parallel`.
    `from_chief(values)` gives every worker the chief's values (its clock, its validation
    scores); the others' arguments only set the shape. One process (`default`, `mirrored`,
    `data_parallel` on one host): the values as they are, no collective.
    """

    def __init__(self, strategy=None, chief=True, jax_processes=False):
        self.strategy, self.chief, self.jax_processes = strategy, chief, jax_processes

    @classmethod
    def for_strategy(cls, name, strategy):
        if name == "multi_worker":
            return cls(strategy, is_chief(name))
        if name == "data_parallel" and process_share():
            return cls(chief=is_chief(name), jax_processes=True)
        return cls()

    @property
    def collective(self):
        return self.strategy is not None or self.jax_processes

    def from_chief(self, values):
        """The chief's `values` (a list of floats), as every worker receives them."""
        if not self.collective:
            return [float(value) for value in values]
        import numpy as np

        if self.jax_processes:  # process 0 is the chief
            from jax.experimental import multihost_utils

            sent = multihost_utils.broadcast_one_to_all(np.asarray(values, "float32"))
            return [float(value) for value in np.asarray(sent)]
        import tensorflow as tf

        local_replicas = len(self.strategy.extended.worker_devices)
        mine = np.asarray(values, "float32")
        none = np.zeros_like(mine)

        def contribution(context):  # the chief's first replica sends; everything else adds 0
            first = context.replica_id_in_sync_group % local_replicas == 0
            return tf.constant(mine if self.chief and first else none)

        summed = self.strategy.reduce(
            tf.distribute.ReduceOp.SUM,
            self.strategy.experimental_distribute_values_from_function(contribution), axis=None)
        return [float(value) for value in np.asarray(summed)]

    def total(self, values):
        """The sum over every worker of its `values` (a list of floats)."""
        if not self.collective:
            return [float(value) for value in values]
        import numpy as np

        mine = np.asarray(values, "float32")
        if self.jax_processes:
            from jax.experimental import multihost_utils

            return [float(v) for v in np.asarray(multihost_utils.process_allgather(mine)).sum(0)]
        import tensorflow as tf

        local_replicas = len(self.strategy.extended.worker_devices)

        def contribution(context):  # each worker's first replica sends; the others add 0
            first = context.replica_id_in_sync_group % local_replicas == 0
            return tf.constant(mine if first else np.zeros_like(mine))

        summed = self.strategy.reduce(
            tf.distribute.ReduceOp.SUM,
            self.strategy.experimental_distribute_values_from_function(contribution), axis=None)
        return [float(value) for value in np.asarray(summed)]

    def check_same_settings(self, settings: dict):
        """Raises ValueError on every worker, naming the settings, where any worker's `settings`
        differ from the chief's: a worker with another budget, cooldown or batch size takes a
        different number of steps or collectives, and the others would wait for it forever. Two
        collectives, the first of the run."""
        names = sorted(settings)
        mine = [_digest(settings[name]) for name in names]
        chiefs = self.from_chief(mine)
        differs = self.total([float(a != b) for a, b in zip(mine, chiefs)])
        different = [name for name, count in zip(names, differs) if count]
        if different:
            raise ValueError(
                "the workers of this run were started with different settings: "
                f"{', '.join(different)} (here: "
                f"{', '.join(f'{name}={settings[name]!r}' for name in different)}); start every "
                "worker with the same options")

    def barrier(self):
        """Returns once every worker has called it."""
        if self.collective:
            self.from_chief([0.0])


def _digest(value) -> float:
    """A 16-bit digest of a setting's value, exact as a float32 (what the collectives carry)."""
    import zlib

    return float(zlib.crc32(json.dumps(value, sort_keys=True).encode()) & 0xFFFF)


class WorkerLostError(RuntimeError):
    """A worker of a multi-worker run stopped (killed, crashed, its machine gone) mid-training."""


LOSS_SIGNS = ("heartbeat", "coordination service", "Collective ops is aborted", "unhealthy",
              "Connection refused", "failed to connect", "Socket closed")


def is_worker_loss(error) -> bool:
    """Whether `error` is how tf.distribute reports a peer gone: the coordination service
    misses its heartbeats (or the chief that runs it is gone) and aborts the collectives."""
    import tensorflow as tf

    return isinstance(error, (tf.errors.UnavailableError, tf.errors.AbortedError,
                              tf.errors.CancelledError, tf.errors.DeadlineExceededError,
                              tf.errors.InternalError)) and _loss_line(error) is not None


def _loss_line(error):
    """The line of `error`'s message that says what was lost, if one does."""
    for line in str(error).splitlines():
        if any(sign in line for sign in LOSS_SIGNS):
            return line.strip()
    return None


@contextlib.contextmanager
def worker_loss_stops_the_job(strategy_name, run_path):
    """Turns tf.distribute's report of a lost peer into `WorkerLostError`, with what to do."""
    try:
        yield
    except Exception as error:
        if strategy_name != "multi_worker" or not is_worker_loss(error):
            raise
        raise WorkerLostError(
            f"a worker of this multi-worker run was lost, so training stopped. TensorFlow says: "
            f"{_loss_line(error)[:400]}\nStart every worker again with the same command: each "
            f"resumes from the last epoch the run finished ({run_path}).") from None
