"""keras-transformer: the Transformer of "Attention Is All You Need" as Keras 3 layers.

The map (data flows down; a room imports only from rooms above it in this list, or from
`pipelines`, which never imports this package):

    config.py        TransformerConfig (every variant an option) and the presets
    layers/          one file per box of the paper's Figure 1, `keras.ops` only
    model.py         the functional model: (source_tokens, target_tokens) -> logits, and the
                     encode / decode / decode_step passes over its layers
    run_dir.py       the run directory: every file name a run writes, spelled once
    generation/      the cached step function; greedy, beam search, sampling; `Translator`
                     (text in, text out); attention maps; BLEU/chrF
    training/        the paper's loss and schedule; `TrainSettings` and the recipes; the train
                     job (`train`), its callbacks, distribution and precision; averaging; alpha
    export/          SavedModel, TFLite and CTranslate2: each format's writer beside its runtime
    pretrained/      Marian / OPUS-MT models, read with numpy, as run directories of ours
    engines.py       which engine translates a run: ours or CTranslate2 (above both)
    viz/             attention heatmaps, the attention page, the positional-encoding plot
    cli/             `python -m keras_transformer COMMAND`: one thin module per command

Importing this package needs Keras and a backend only; TensorFlow-only parts (`pipelines`, the
train job, export) are imported where they are used. Importing it registers every layer of the
model, so `keras.models.load_model` reads a saved model afterwards.
"""

from keras_transformer._startup import quiet_backend_start

quiet_backend_start()

from keras_transformer.config import PRESETS, TransformerConfig, preset  # noqa: E402
from keras_transformer.model import Transformer, TransformerParts, build_transformer  # noqa: E402

__version__ = "0.1.0"
__all__ = ["PRESETS", "Transformer", "TransformerConfig", "TransformerParts", "build_transformer",
           "preset"]
