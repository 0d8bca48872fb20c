"""Generation: from a trained model to text.

    decoding.py        the one cached step function and the searches around it: greedy, beam
                       search, sampling (`keras.ops` only: any backend, traceable, XLA)
    translator.py      `Translator`: text in, text out through the model's `TextPath` (TensorFlow)
    attention_maps.py  `AttentionMaps`: the attention weights one translation computed, as data
    evaluation.py      BLEU, chrF (sacrebleu) and exact match

Nothing here imports training, export or the CLI. Import the module you need: `translator` and
`evaluation` import TensorFlow and sacrebleu, so nothing is imported here.
"""
