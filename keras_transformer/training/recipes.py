"""Training recipes: the defaults of the train job, one for the embedded dataset, one for real corpora.

A `TrainSettings` field left at None takes its recipe's value. The recipe's model settings apply
to the recipe's preset, under any `--set`; a preset chosen by the user is taken as it is. Why each
value was chosen is in docs/recipes.md, with the measurements behind it.
"""

# The embedded English -> Spanish grammar: 7 epochs whose last half takes the learning rate linearly
# to 0 score 99.2-99.5% exact match on its test split after about 5 minutes of training on 2 AVX2
# CPU cores (docs/recipes.md). Without dropout (the grammar has no noise to overfit to), without
# validation BLEU (the lowest loss picks the kept model), without averaging (after the cooldown the
# last epoch beats the mean of the last ones), one TensorFlow thread per op (its small ops ran ~10%
# faster so on 2 cores; the medium model's larger ones did not).
EMBEDDED = dict(preset="small", epochs=7, vocab_size=1000, batch_tokens=1024, warmup_steps=600,
                learning_rate_scale=0.7, label_smoothing=0.1, steps_per_epoch=0,
                keep_best="val_loss", bleu_sentences=0, early_stopping=0,
                keep_checkpoints=0, average_last=0, tune_alpha=False, cooldown=0.5,
                mixed_precision="float32", intra_op_threads=1, model={"dropout": 0.0})

# A user's corpus (any language pair, 30k to millions of pairs): chosen on the validation set of
# IWSLT'15 en-vi after 12 minutes on 2 CPU cores, tanaka en-ja held out (docs/recipes.md).
# Without dropout: in a run of minutes the model sees each pair a few times and underfits; a run of
# hours over a small corpus may want --set dropout=0.1 (not measured).
REAL_CORPUS = dict(preset="medium", epochs=1000, vocab_size=4000, batch_tokens=2048,
                   warmup_steps=500, learning_rate_scale=0.5, label_smoothing=0.1,
                   steps_per_epoch=400, keep_best="val_bleu", bleu_sentences=300, early_stopping=8,
                   keep_checkpoints=0, average_last=0, tune_alpha=True, cooldown=0.3,
                   mixed_precision="auto", intra_op_threads=0, model={"dropout": 0.0})


# Fine-tuning (`--init-from`): the data's recipe with a gentler schedule, so the first steps do not
# undo what the model knows. On the embedded grammar fine-tuned to swapped nouns (400 steps),
# scales 0.03-0.3 all learned the change and kept the old grammar; 1.0 forgot some of both
# (docs/recipes.md). 0.03 puts a base-sized model (d_model 512) at a peak of ~1e-4, where
# published Marian fine-tuning runs are. The model's own settings (dropout included) come with it.
FINE_TUNING = dict(learning_rate_scale=0.03, warmup_steps=200)


def recipe(data, fine_tuning=False) -> dict:
    """The recipe for `data` ("default" is the embedded dataset); `fine_tuning`: continuing a
    trained model (`--init-from`)."""
    chosen = EMBEDDED if data == "default" else REAL_CORPUS
    return {**chosen, **FINE_TUNING} if fine_tuning else chosen
