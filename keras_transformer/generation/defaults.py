"""The searches and their defaults, everywhere (the CLI, `Translator`, the exports, CTranslate2's
translator, the run directory). Plain constants, no import: whatever reads them stays light."""

SEARCHES = ("greedy", "beam", "sample")
BEAM_SIZE, ALPHA = 4, 0.6  # beam search's width and GNMT length penalty exponent
# Hypotheses decoded together by default: 64 sentences greedily, 64 // beam_size with beam search.
# Beam search runs beam_size rows a sentence; at 64 sentences x 4 it decoded 300 IWSLT sentences
# 2x slower on 2 CPU cores than at 16 x 4, and took 290 MiB more (docs/recipes.md).
BATCH_ROWS = 64
