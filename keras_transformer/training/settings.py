"""`TrainSettings`: what a training run is made of, each field defaulting to the data's recipe.

Each field is declared once, here, with what the command line needs to offer it (`option`): its
help, choices and bounds. `cli/options.py` makes `train`'s options from these declarations, and
`TrainSettings.resolved` checks values against the same choices and bounds, so the Python API and
the command line accept and refuse alike.
"""

import dataclasses

from keras_transformer.config import PRESETS
from keras_transformer.training.distribution import STRATEGIES
from keras_transformer.training.precision import PRECISIONS
from keras_transformer.training.recipes import recipe

KEEP_BEST = {"val_bleu": "max", "val_loss": "min"}  # what decides the kept model


def option(help, *, choices=None, minimum=None, metavar=None, flag=None, left_out=None):
    """A field's command-line declaration (dataclass field metadata).

    Args:
        help: what the option does; the default (the field's, or each recipe's) is appended.
        choices: the values allowed; minimum: the smallest value allowed (None: no bound).
        metavar, flag: argparse's; `flag` defaults to --FIELD-NAME.
        left_out: what a None default means, where it is neither a recipe's value nor "none".
    """
    return {"help": help, "choices": choices, "minimum": minimum, "metavar": metavar, "flag": flag,
            "left_out": left_out}


def setting(default=None, **declaration):
    """A dataclass field with its `option` declaration."""
    if callable(default):
        return dataclasses.field(default_factory=default, metadata=option(**declaration))
    return dataclasses.field(default=default, metadata=option(**declaration))


@dataclasses.dataclass
class TrainSettings:
    """What a run is made of. A field left at None takes the value of the data's recipe
    (`keras_transformer.training.recipes`: one for the embedded dataset, one for real corpora).
    Each field's help says what it does (`train --help` prints them)."""

    data: str = setting(
        "default", help="'default' (the embedded English->Spanish dataset), a TSV of "
        "source<TAB>target lines, or SOURCE_FILE,TARGET_FILE (line-aligned text files); any size, "
        "read as a stream")
    validation_data: str | None = setting(
        metavar="DATA", help="your own validation set (TSV or SOURCE,TARGET)",
        left_out="held out of --data by a hash of each source sentence")
    test_data: str | None = setting(
        metavar="DATA", help="your own test set (TSV or SOURCE,TARGET)",
        left_out="held out of --data")
    max_bad_fraction: float = setting(
        0.05, minimum=0.0, help="malformed lines (not UTF-8, no tab, an empty side) are skipped and "
        "reported; stop if more than this fraction")
    init_from: str | None = setting(
        metavar="RUN", help="fine-tune: start from the model of this run directory (one trained "
        "here, or a pretrained model brought in with `import`), keeping its tokenizers and model "
        "settings (a --preset, --set or --vocab-size that changes them is refused; --set "
        "dropout=... may change); the fine-tuning recipe's learning rate and warmup apply",
        left_out="a new model, initialized at random")
    vocab_sample: int = setting(
        100_000, minimum=1, help="training pairs (a uniform sample) the vocabularies are learned "
        "from")
    preset: str | None = setting(choices=tuple(sorted(PRESETS)), help="model size")
    overrides: dict = setting(
        dict, flag="--set", metavar="KEY=VALUE",
        help="override a model setting, e.g. --set num_layers=3 --set norm_position=pre "
        "(repeatable; applied on top of the recipe's model settings when the preset is the "
        "recipe's)")
    vocab_size: int | None = setting(
        minimum=8, help="SentencePiece vocabulary size per language, or shared")
    shared_vocab: bool = setting(False, help="one vocabulary for both languages")
    batch_tokens: int | None = setting(
        minimum=1, help="batch size in tokens, sentences bucketed by length")
    warmup_steps: int | None = setting(
        minimum=1, help="linear warmup of the paper's learning-rate schedule")
    learning_rate_scale: float | None = setting(
        minimum=0.0, help="multiplies the paper's schedule")
    label_smoothing: float | None = setting(minimum=0.0, help="epsilon of label smoothing")
    seed: int = setting(
        0, help="seed of data generation, splits, shuffling and initialization")
    epochs: int | None = setting(minimum=1, help="epochs at most")
    steps_per_epoch: int | None = setting(
        minimum=0, help="training steps between evaluations and checkpoints, 0 for a pass over the "
        "data")
    max_minutes: float | None = setting(
        minimum=0.0, help="a training time budget: stop at the end of the step where it runs out, "
        "then evaluate and report (counted over resumed sessions too)")
    keep_best: str | None = setting(
        choices=tuple(sorted(KEEP_BEST)), help="what decides the kept best.keras")
    bleu_sentences: int | None = setting(
        minimum=0, help="validation sentences translated each epoch for val_bleu and val_chrf, "
        "0 none")
    early_stopping: int | None = setting(
        minimum=0, metavar="EPOCHS", help="stop after this many epochs without a better "
        "--keep-best value, 0 never")
    keep_checkpoints: int | None = setting(
        minimum=0, metavar="N", help="keep the weights of the last N epochs in checkpoints/, for "
        "`average`")
    average_last: int | None = setting(
        minimum=0, metavar="N", help="at the end, average the last N epochs' weights into "
        "averaged.keras, the run's model from then on (translate, evaluate, export), and report "
        "both models' test scores")
    tune_alpha: bool | None = setting(
        help="after training, try beam search alphas on the validation sentences and store the "
        "best, the default of translate, evaluate and export")
    cooldown: float | None = setting(
        minimum=0.0, metavar="FRACTION", help="take the learning rate linearly to 0 over this last "
        "fraction of the --max-minutes budget, or without one of the --epochs, 0 none")
    jit_compile: bool = setting(False, help="compile training steps with XLA")
    mixed_precision: str | None = setting(
        choices=PRECISIONS, help="compute the layers in 16-bit floats (the weights and the loss "
        "stay float32); auto: bfloat16 on GPUs and CPUs that compute it natively, else float32")
    intra_op_threads: int | None = setting(
        minimum=0, help="TensorFlow's threads within one op, 0: its default, one per core "
        "(process-wide: it takes effect where the job is the process's first TensorFlow work)")
    strategy: str = setting(
        "default", choices=STRATEGIES,
        help="default: one device; mirrored: every local GPU or CPU device (tf.distribute); "
        "multi_worker: the machines in TF_CONFIG, the same command on each (tf.distribute); "
        "data_parallel: keras.distribution over every device, of every process named by "
        "KERAS_DISTRIBUTION_* (JAX backend)")

    # fields that may change when a run is resumed
    FREE = ("epochs", "max_minutes", "cooldown", "early_stopping", "average_last", "tune_alpha",
            "jit_compile", "intra_op_threads", "strategy")

    def resolved(self) -> "TrainSettings":
        """These settings with every None taken from the data's recipe, and, when the preset is
        the recipe's, the recipe's model settings under the `--set` overrides; checked against
        each field's declared choices and bounds (ValueError)."""
        defaults = recipe(self.data, fine_tuning=self.init_from is not None)
        values = dataclasses.asdict(self)
        for name, value in defaults.items():
            if name in values and values[name] is None:
                values[name] = value
        recipe_model = defaults["model"] if self.preset is None else {}
        if self.init_from is not None:  # the model is the one fine-tuned: only what was asked
            values["preset"], values["vocab_size"] = self.preset, self.vocab_size
            recipe_model = {}
        values["overrides"] = {**recipe_model, **self.overrides}
        resolved = TrainSettings(**values)
        resolved.check()
        if resolved.steps_per_epoch == 0:  # asked for explicitly: an epoch is a pass over the data
            resolved.steps_per_epoch = None
        return resolved

    def check(self):
        """Raises ValueError naming the first field outside its declared choices or bounds."""
        for field in dataclasses.fields(self):
            value, declared = getattr(self, field.name), field.metadata
            if value is None:
                continue
            if declared.get("choices") and value not in declared["choices"]:
                raise ValueError(f"{field.name} must be one of {', '.join(declared['choices'])}, "
                                 f"got {value!r}")
            if declared.get("minimum") is not None and value < declared["minimum"]:
                raise ValueError(f"{field.name} must be {declared['minimum']} or more, got "
                                 f"{value}")

    def identity(self) -> dict:
        """The settings a resumed run must share."""
        values = dataclasses.asdict(self)
        for free in self.FREE:
            values.pop(free)
        return values
