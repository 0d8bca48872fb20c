"""Training: the paper's objective and optimizer, and the train job that fits a model into a run
directory.

    cross_entropy.py  the fused label-smoothed cross-entropy (logits in the compute dtype)
    loss.py           `MaskedSparseCrossEntropy` and `MaskedAccuracy`: the loss over real tokens
    schedule.py       the warmup schedule, Adam, and `compile_transformer`
    settings.py       `TrainSettings`: every option of a run
    recipes.py        the defaults of `TrainSettings`: one recipe for the embedded data, one for
                      real corpora
    job.py            `train`: data -> tokenizers -> tf.data -> `model.fit` -> run dir -> report
    callbacks.py      time budget, cooldown, validation BLEU, the kept best model, checkpoints
    distribution.py   strategies by name; what multi-worker and multi-process runs agree on
    precision.py      float32 or bfloat16 ("auto": native hardware only)
    averaging.py      checkpoint averaging (paper section 6.1)
    beam_alpha.py     beam search's length penalty, chosen on validation sentences

The job imports TensorFlow when it runs, not when it is imported.
"""

from keras_transformer.training.job import train
from keras_transformer.training.loss import MaskedAccuracy, MaskedSparseCrossEntropy
from keras_transformer.training.schedule import (
    TransformerSchedule,
    compile_transformer,
    paper_optimizer,
)
from keras_transformer.training.settings import TrainSettings

__all__ = ["MaskedAccuracy", "MaskedSparseCrossEntropy", "TrainSettings", "TransformerSchedule",
           "compile_transformer", "paper_optimizer", "train"]
