"""Checkpoint averaging, as the paper does it (section 6.1: the base model averages its last 5
checkpoints): the mean of each weight over the last N checkpoints of a run, saved as a model."""

import numpy as np


def average_weights(model, weight_files):
    """Sets `model`'s weights to the mean, weight by weight, of the `weight_files` (saved with
    `model.save_weights`); returns the model. The mean is taken in float64."""
    if not weight_files:
        raise ValueError("no checkpoint to average")
    sums = None
    for path in weight_files:
        model.load_weights(path)
        values = [np.asarray(weight, np.float64) for weight in model.get_weights()]
        sums = values if sums is None else [total + value for total, value in zip(sums, values)]
    model.set_weights([(total / len(weight_files)).astype(weight.dtype)
                       for total, weight in zip(sums, model.get_weights())])
    return model


def average_run(run, last):
    """Averages the last `last` checkpoints of a `RunDir` into its `averaged_model` file.

    Returns (the averaged model, the checkpoint files used).
    """
    run.require_trained()
    files = sorted(run.checkpoints.glob("epoch_*.weights.h5"))[-last:] if last > 0 else []
    if not files:
        raise FileNotFoundError(f"{run.path} keeps no checkpoints to average: train it with "
                                "--keep-checkpoints N")
    model = run.load_model(run.best_model)
    average_weights(model, files)
    model.save(run.averaged_model)
    return model, files
