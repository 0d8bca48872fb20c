"""`TrainSettings`: what a training run is made of, each field defaulting to the data's recipe."""

import dataclasses

from keras_transformer.training.recipes import recipe

KEEP_BEST = {"val_bleu": "max", "val_loss": "min"}  # what decides the kept model


@dataclasses.dataclass
class TrainSettings:
    """What a run is made of. A field left at None takes the value of the data's recipe
    (`keras_transformer.training.recipes`: one for the embedded dataset, one for real corpora).

    `data`, `validation_data`, `test_data`: "default" (the embedded dataset, for `data`), a TSV or
    "SOURCE,TARGET" aligned files; held-out splits not given are carved out of `data`.
    `max_bad_fraction`: malformed lines tolerated (skipped and reported) before the job stops.
    `vocab_sample`: training pairs (a uniform sample) the vocabularies are learned from.
    `steps_per_epoch`: steps between evaluations; 0 or None in the recipe: a pass over the data.
    `max_minutes`: a training time budget, over every session of the run.
    `cooldown`: the learning rate goes linearly to 0 over the last fraction of the budget, or
    without one of the epochs (0: off).
    `keep_best`: "val_bleu" or "val_loss", what decides the kept model.
    `bleu_sentences`: validation sentences translated for val_bleu/val_chrf each epoch (0: none).
    `early_stopping`: stop after this many epochs without a better `keep_best` (0: never).
    `keep_checkpoints`, `average_last`: keep the last N epochs' weights; average the last N.
    `mixed_precision`: a `precision.PRECISIONS` name; "auto" is bfloat16 where it is native.
    `tune_alpha`: after training, choose beam search's length penalty on the validation
    sentences (`beam_alpha`) and store it in the run.
    `intra_op_threads`: TensorFlow's threads within one op (0: its default, one per core);
    process-wide, so it takes effect only where the job is the first TensorFlow work.
    """

    data: str = "default"
    validation_data: str | None = None
    test_data: str | None = None
    max_bad_fraction: float = 0.05
    vocab_sample: int = 100_000
    preset: str | None = None
    overrides: dict = dataclasses.field(default_factory=dict)
    vocab_size: int | None = None
    shared_vocab: bool = False
    batch_tokens: int | None = None
    warmup_steps: int | None = None
    learning_rate_scale: float | None = None
    label_smoothing: float | None = None
    seed: int = 0
    epochs: int | None = None
    steps_per_epoch: int | None = None
    max_minutes: float | None = None
    keep_best: str | None = None
    bleu_sentences: int | None = None
    early_stopping: int | None = None
    keep_checkpoints: int | None = None
    average_last: int | None = None
    tune_alpha: bool | None = None
    cooldown: float | None = None
    jit_compile: bool = False
    mixed_precision: str | None = None
    intra_op_threads: int | None = None
    strategy: str = "default"

    # fields that may change when a run is resumed
    FREE = ("epochs", "max_minutes", "cooldown", "early_stopping", "average_last", "tune_alpha",
            "jit_compile", "intra_op_threads", "strategy")

    def resolved(self) -> "TrainSettings":
        """These settings with every None taken from the data's recipe, and, when the preset is
        the recipe's, the recipe's model settings under the `--set` overrides."""
        defaults = recipe(self.data)
        values = dataclasses.asdict(self)
        for name, value in defaults.items():
            if name in values and values[name] is None:
                values[name] = value
        recipe_model = defaults["model"] if self.preset is None else {}
        values["overrides"] = {**recipe_model, **self.overrides}
        if values["steps_per_epoch"] == 0:  # asked for explicitly: an epoch is a pass over the data
            values["steps_per_epoch"] = None
        if values["intra_op_threads"] < 0:
            raise ValueError(f"intra_op_threads must be 0 or more, got {values['intra_op_threads']}")
        if values["keep_best"] not in KEEP_BEST:
            raise ValueError(f"keep_best must be one of {sorted(KEEP_BEST)}, got {values['keep_best']!r}")
        return TrainSettings(**values)

    def identity(self) -> dict:
        """The settings a resumed run must share."""
        values = dataclasses.asdict(self)
        for free in self.FREE:
            values.pop(free)
        return values
