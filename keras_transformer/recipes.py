"""Training recipes: the defaults of the train job, one for the embedded dataset, one for real corpora.

A `TrainSettings` field left at None takes its recipe's value, and the recipe's model settings
apply unless `--set` gives them. Why each value was chosen is in docs/recipes.md, with the
measurements behind it.
"""

# The embedded English -> Spanish grammar: 99.7% exact match on its test split in ~7 minutes
# on 2 CPU cores (README). Without dropout: the grammar has no noise to overfit to.
EMBEDDED = dict(preset="small", epochs=24, vocab_size=1000, batch_tokens=1024, warmup_steps=1600,
                learning_rate_scale=1.0, label_smoothing=0.1, steps_per_epoch=None,
                keep_best="val_bleu", bleu_sentences=200, early_stopping=0,
                model={"dropout": 0.0})

# A user's corpus (any language pair, 30k to millions of pairs): chosen on IWSLT'15 en-vi with
# tanaka en-ja held out, for a strong model in ~12 minutes on 2 CPU cores (docs/recipes.md).
REAL_CORPUS = dict(preset="small", epochs=1000, vocab_size=8000, batch_tokens=4096,
                   warmup_steps=800, learning_rate_scale=2.0, label_smoothing=0.1,
                   steps_per_epoch=250, keep_best="val_bleu", bleu_sentences=300, early_stopping=8,
                   model={"max_length": 128})


def recipe(data) -> dict:
    """The recipe for `data` ("default" is the embedded dataset)."""
    return EMBEDDED if data == "default" else REAL_CORPUS
