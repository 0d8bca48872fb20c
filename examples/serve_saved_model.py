"""Translate with an exported SavedModel, using plain TensorFlow: none of this project's code.

    python -m keras_transformer export runs/default --out saved_models/en_es
    python examples/serve_saved_model.py saved_models/en_es/1 "The dog runs." "Where is my cat?"

Only `tensorflow` and `tensorflow_text` are needed (the latter registers the tokenizer ops
the graph uses). A runtime without tensorflow-text loads `VERSION/translate_ids/` instead:
ids in, ids out, with the SentencePiece models in its `assets/` (tokenize with the `sentencepiece`
library: they carry the normalization rules too).
"""

import sys

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers FastSentencepieceTokenize, NgramsStringJoin)

path = sys.argv[1] if len(sys.argv) > 1 else "saved_models/en_es/1"
sentences = sys.argv[2:] or ["The dog runs.", "Where is my cat?", "", "你好 🙂"]

model = tf.saved_model.load(path)

# Greedy decoding: strings in, strings out.
translate = model.signatures["serving_default"]
for sentence, translation in zip(
        sentences, translate(sentences=tf.constant(sentences))["translations"].numpy()):
    print(f"{sentence!r} -> {translation.decode('utf-8')!r}")

# Beam search: the best translation and every hypothesis with its score, best first.
beams = model.signatures["beam_search"](sentences=tf.constant(sentences[:1]))
for hypothesis, score in zip(beams["hypotheses"].numpy()[0], beams["scores"].numpy()[0]):
    print(f"  {score:7.3f}  {hypothesis.decode('utf-8')}")

# Ids in, ids out (what translate_ids/ serves without tensorflow-text): [START]=2 ... [END]=3.
print(model.signatures["translate_ids"](source_ids=tf.constant([[2, 5, 6, 3]]))["output_ids"])
print("tokenizers:", model.source_tokenizer.asset_path.numpy().decode(),
      model.target_tokenizer.asset_path.numpy().decode())
