"""Translate with an exported CTranslate2 directory, using `ctranslate2` and `sentencepiece` alone:
none of this project's code.

    python -m keras_transformer export runs/default --format ctranslate2 --quantization int8
    python examples/serve_ctranslate2.py saved_models/default_ctranslate2/1 "The dog runs."

The directory holds everything a server needs: model.bin, CTranslate2's config.json (it adds
[START] and [END] to each source and decodes from [START]), the vocabularies, and the run's
SentencePiece models, which carry the normalization rules. keras_transformer.json holds the
model's max_length and the beam search alpha the run chose.
"""

import json
import sys
from pathlib import Path

import ctranslate2
import sentencepiece as spm

directory = Path(sys.argv[1] if len(sys.argv) > 1 else "saved_models/default_ctranslate2/1")
sentences = sys.argv[2:] or ["The dog runs.", "Where is my cat?", "", "你好 🙂"]

settings = json.loads((directory / "keras_transformer.json").read_text())
max_length, alpha = settings["max_length"], settings["alpha"]
source = spm.SentencePieceProcessor(model_file=str(directory / "source.spm"))
target = spm.SentencePieceProcessor(model_file=str(directory / "target.spm"))
translator = ctranslate2.Translator(str(directory), device="cpu", compute_type="default")

# Pieces, cut so that [START] pieces [END] fits max_length; a sentence without pieces gets "".
pieces = [p[:max_length - 2] for p in source.encode(sentences, out_type=str)]
wordful = [i for i, p in enumerate(pieces) if p]
translations = [""] * len(sentences)

# Greedy decoding.
results = translator.translate_batch([pieces[i] for i in wordful], beam_size=1,
                                     max_decoding_length=max_length, max_input_length=0,
                                     min_decoding_length=0)
for i, result in zip(wordful, results):
    translations[i] = target.decode(result.hypotheses[0])
for sentence, translation in zip(sentences, translations):
    print(f"{sentence!r} -> {translation!r}")

# Beam search, ranked as the Keras model ranks it: log-probability / ((5 + |Y|) / 6) ** alpha,
# |Y| counting [END] (length_penalty=0 asks the engine for summed log-probabilities).
if wordful:
    result = translator.translate_batch([pieces[wordful[0]]], beam_size=4, num_hypotheses=4,
                                        length_penalty=0, return_scores=True,
                                        return_end_token=True, max_decoding_length=max_length, min_decoding_length=0,
                                        max_input_length=0)[0]
    ranked = sorted(((score / ((5 + len(h)) / 6) ** alpha, h)
                     for h, score in zip(result.hypotheses, result.scores)), reverse=True)
    for score, hypothesis in ranked:
        print(f"{score:8.4f}  {target.decode([p for p in hypothesis if p != '[END]'])}")
