"""The reserved tokens and their ids: the one definition the tokenizers, the model's masks, decoding
and the benchmarks share. Below both packages: `keras_transformer` imports it, `pipelines` never
imports `keras_transformer`. Plain constants, no import: the JAX-only GPU machines read them too.

    [PAD]=0    padding: masked in every attention and ignored by the loss
    [UNK]=1    a piece the vocabulary lacks
    [START]=2  first decoder input; starts every source ([START] x [END])
    [END]=3    ends every sequence; decoding stops there
"""

RESERVED_TOKENS = ("[PAD]", "[UNK]", "[START]", "[END]")
PAD_ID, UNK_ID, START_ID, END_ID = range(len(RESERVED_TOKENS))
