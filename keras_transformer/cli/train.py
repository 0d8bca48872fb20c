"""`train`: every option is a `TrainSettings` field, made from its declaration
(`training/settings.py`); the defaults a field takes from the recipes are shown in the help."""

import dataclasses
import sys

from keras_transformer.cli.options import add_settings_options
from keras_transformer.training import recipes
from keras_transformer.training.settings import TrainSettings


def default_text(field):
    """What `field` becomes when left out: each recipe's value, or the field's default."""
    if field.name in recipes.EMBEDDED:
        return (f"default: {recipes.EMBEDDED[field.name]} for the embedded data, "
                f"{recipes.REAL_CORPUS[field.name]} for a real corpus")
    if field.name == "overrides":
        return (f"default: the recipe sets {recipes.EMBEDDED['model']} for the embedded data, "
                f"{recipes.REAL_CORPUS['model']} for a real corpus")
    if field.default is None:
        return f"default: {field.metadata['left_out'] or 'none'}"
    default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    return f"default: {default}"


def add_parser(commands):
    command = commands.add_parser(
        "train", help="train a model with model.fit and write a run directory",
        description="Train on the embedded dataset or your own parallel text. Writes "
                    "config.json, SentencePiece models, best.keras (the kept model), averaged.keras "
                    "(with --average-last), history.csv and TensorBoard logs/ to --out. Run the "
                    "same command again after an interruption to resume from the last finished "
                    "epoch. Options left out take the data's recipe (docs/training.md).")
    add_settings_options(command, TrainSettings, default_text)
    command.add_argument("--out", default="runs/default",
                         help="the run directory (default: runs/default)")
    command.add_argument("--examples", type=int, default=5,
                         help="test translations to print at the end (default: 5)")
    return command


def settings_from(args) -> TrainSettings:
    """The `TrainSettings` that `args` (parsed `train` options) describe."""
    values = {field.name: getattr(args, field.name) for field in dataclasses.fields(TrainSettings)}
    values["overrides"] = dict(values["overrides"])  # (key, value) pairs, in order given
    return TrainSettings(**values)


def run(args):
    from keras_transformer.run_dir import IncompatibleRunError
    from keras_transformer.training.distribution import WorkerLostError
    from keras_transformer.training.job import train

    try:
        train(settings_from(args), args.out, examples=args.examples)
    except (IncompatibleRunError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except WorkerLostError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    return 0
