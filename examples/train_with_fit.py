"""Train a translator with plain `model.fit`, in your own script.

The pieces: `pipelines` gives SentencePiece tokenizers, the text path (framing) and tf.data
batches, `keras_transformer` the model, the paper's loss and schedule; the rest is ordinary Keras.

    python examples/train_with_fit.py --epochs 10
"""

import argparse

import keras

from keras_transformer import build_transformer, preset
from keras_transformer.generation.translator import Translator
from keras_transformer.training.schedule import compile_transformer
from pipelines import batching, default_data, tokenizers
from pipelines.text_path import TextPath

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--train-size", type=int, default=20000)
parser.add_argument("--preset", default="small")
parser.add_argument("--out", default="translator.keras")
args = parser.parse_args()

keras.utils.set_random_seed(0)
splits = default_data.default_splits(seed=0, train=args.train_size, validation=500, test=500)
source_tokenizer, target_tokenizer = tokenizers.build_tokenizers(splits["train"], vocab_size=1000)
config = preset(args.preset, source_vocab_size=source_tokenizer.vocab_size,
                target_vocab_size=target_tokenizer.vocab_size, dropout=0.0)
text_path = TextPath(source_tokenizer, target_tokenizer, config.max_length)


def batches(pairs, training):
    """((source, target_in), target_out) batches of about 2048 tokens, bucketed by length."""
    return batching.make_dataset(pairs, text_path, batch_tokens=2048, shuffle=training, seed=0)


model = build_transformer(config)
compile_transformer(model, config.d_model, warmup_steps=800)
model.fit(batches(splits["train"], True), validation_data=batches(splits["validation"], False),
          epochs=args.epochs,
          callbacks=[keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True)])
model.save(args.out)

translator = Translator(model, text_path)
sources, references = zip(*splits["test"][:5])
for source, reference, translation in zip(sources, references, translator.translate(sources)):
    print(f"{source}\n  model:     {translation}\n  reference: {reference}")
