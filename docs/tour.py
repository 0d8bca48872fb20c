# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A tour of the Transformer, cell by cell
#
# Everything below runs on this package's own layers: the positional encoding, the
# Q, K, V projections, the masked softmax, multi-head attention, an encoder block, and
# a trained model decoding one token at a time with a key/value cache.
#
# Run it top to bottom with `python docs/tour.py` (a minute or two on 2 CPU cores), or
# open it as a notebook: `jupytext --to notebook docs/tour.py` (or open the `.py` file
# directly in Jupyter with jupytext installed), then run cell by cell.
#
# - `TOUR_OUT`: the folder for the figures (default: a new temporary folder).
# - `TOUR_RUN`: a trained run directory, e.g. `runs/default` from the README's first
#   command (the default when it exists). Without one, the tour trains a tiny model for
#   about half a minute: it translates badly, but every step works the same.

# %%
import os
import tempfile
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
from keras import ops

from keras_transformer.layers import (
    EncoderBlock,
    MultiHeadAttention,
    PositionalEmbedding,
    causal_mask,
    key_padding_mask,
    masked_softmax,
    sinusoidal_encoding,
)

OUT = Path(os.environ.get("TOUR_OUT") or tempfile.mkdtemp(prefix="keras-transformer-tour-"))
OUT.mkdir(parents=True, exist_ok=True)
np.set_printoptions(precision=3, suppress=True, linewidth=110)
keras.utils.set_random_seed(0)


def show(path):
    """Show a saved figure in a notebook; elsewhere, say where it is."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
        if get_ipython() is not None:
            display(Image(filename=str(path)))
    except ImportError:
        pass
    print(f"figure: {path}")


def table(matrix, rows, columns, width=8):
    """A matrix with token names on its rows and columns."""
    print(" " * 10 + "".join(f"{c[:width - 1]:>{width}}" for c in columns))
    for name, values in zip(rows, np.asarray(matrix)):
        print(f"{name[:9]:>9} " + "".join(f"{v:{width}.3f}" for v in values))


def heat_map(axis, matrix, rows, columns, title):
    """One annotated heat map (weights in [0, 1])."""
    axis.imshow(matrix, cmap="viridis", vmin=0, vmax=1)
    axis.set_xticks(range(len(columns)), columns, rotation=90)
    axis.set_yticks(range(len(rows)), rows)
    for (i, j), value in np.ndenumerate(np.asarray(matrix)):
        axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                  color="white" if value < 0.5 else "black")
    axis.set_title(title, fontsize=10)


# %% [markdown]
# ## 1. Positional encoding: why order matters
#
# Attention compares every token with every other token, and nothing in that comparison
# says *where* a token stands. Feed it "you are a boy" and "are you a boy" as bare word
# vectors and the word "you" comes out exactly the same in both: attention by itself is
# blind to order. The paper adds a positional encoding to each word vector:
# PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)).

# %%
WORDS = ["[PAD]", "[UNK]", "[START]", "[END]", "you", "are", "a", "boy", "I", "like",
         "going", "to", "movies", "school"]
WORD_ID = {word: i for i, word in enumerate(WORDS)}


def ids(sentence):
    """'you are a boy' -> (1, T) int32 ids of our toy vocabulary."""
    return np.array([[WORD_ID[word] for word in sentence.split()]], "int32")


D_MODEL = 8
embedding = PositionalEmbedding(len(WORDS), D_MODEL, max_length=32)  # dropout 0
embedding.build((None, None))
self_attention = MultiHeadAttention(num_heads=1, head_dim=D_MODEL)

print("positional encoding of positions 0..3 (d_model = 8):")
print(np.asarray(sinusoidal_encoding(4, D_MODEL)))

statement, question = ids("you are a boy"), ids("are you a boy")
for label, embed in [
        ("word vectors only", lambda t: embedding.token_embedding(t) * np.sqrt(D_MODEL)),
        ("word vectors + positions", embedding)]:
    x_statement, x_question = embed(statement), embed(question)
    out_statement = self_attention(x_statement, x_statement)
    out_question = self_attention(x_question, x_question)
    # "you" is token 0 of the statement and token 1 of the question
    difference = np.abs(np.asarray(out_statement[0, 0] - out_question[0, 1])).max()
    print(f"{label:>25}: 'you' after attention differs by {difference:.6f} between the "
          "two sentences")

# %%
from keras_transformer.viz.plots import plot_positional_encoding  # noqa: E402

show(plot_positional_encoding(OUT / "positional_encoding.png", length=64, d_model=128))

# %% [markdown]
# Without positions the difference is 0: the two sentences look identical to attention.
# With positions, "you" at position 0 and "you" at position 1 are different vectors.
#
# ## 2. Q, K and V for "I like going to movies"
#
# Each token's vector x is projected three times: a query q = x Wq ("what am I looking
# for?"), a key k = x Wk ("what do I offer?") and a value v = x Wv ("what do I pass on?").
# The projections are the `query`, `key` and `value` Dense layers of `MultiHeadAttention`.
# One head of size d_k = 4 here.

# %%
TOKENS = "I like going to movies".split()
x = embedding(ids("I like going to movies"))  # (1, 5, d_model)
attention = MultiHeadAttention(num_heads=1, head_dim=4)
attention.build(x.shape)
X = np.asarray(x[0])
Wq, Wk, Wv = (np.asarray(layer.kernel) for layer in
              (attention.query_dense, attention.key_dense, attention.value_dense))
bq, bk, bv = (np.asarray(layer.bias) for layer in
              (attention.query_dense, attention.key_dense, attention.value_dense))
Q, K, V = X @ Wq + bq, X @ Wk + bk, X @ Wv + bv
print(f"X {X.shape}  Wq {Wq.shape}  ->  Q {Q.shape}, K {K.shape}, V {V.shape}")
print("Q =")
print(Q)

# the layer computes the same, split into heads: (B, h, T, d_k)
query_heads = attention.split_heads(attention.query_dense(x))
print("the layer's queries, head 1, equal ours:",
      np.allclose(np.asarray(query_heads[0, 0]), Q, atol=1e-5))

scores = Q @ K.T / np.sqrt(4)  # how well each query (row) matches each key (column)
print("\nscores = Q K^T / sqrt(d_k):")
table(scores, TOKENS, TOKENS)

# %% [markdown]
# ## 3. The decoder's mask: -inf, not 0
#
# While generating, position t must not see the tokens after it (they do not exist
# yet). The mask sets those scores to **-inf** before the softmax, and exp(-inf) = 0:
# the weights above the diagonal are exactly zero. If we put **0** there instead, the
# softmax gives exp(0) = 1 to each hidden score: the future gets small, but not zero,
# weights, and information leaks backwards.

# %%
allowed = np.asarray(causal_mask(5))  # True where key position <= query position
minus_inf = np.asarray(masked_softmax(scores, allowed))  # the package's masked softmax
zero = np.asarray(ops.softmax(np.where(allowed, scores, 0.0)))  # the mistake

future = np.triu(np.ones((5, 5), bool), k=1)
print("mask with -inf:")
table(minus_inf, TOKENS, TOKENS)
print("above the diagonal, the largest weight is", minus_inf[future].max(), "- exactly 0:",
      bool(np.all(minus_inf[future] == 0.0)))
print("\nmask with 0:")
table(zero, TOKENS, TOKENS)
print(f"above the diagonal: up to {zero[future].max():.3f}; 'I' gives "
      f"{zero[0, 1:].sum():.3f} of its attention to words it has not seen")
print("both are proper distributions, rows sum to", minus_inf.sum(-1), zero.sum(-1))

# %% [markdown]
# The leak is real: change the last word and, with the 0 mask, the earlier positions
# change too. With -inf they cannot.

# %%
school = embedding(ids("I like going to school"))
x_school = np.asarray(school[0])
V_school = x_school @ Wv + bv
K_school = x_school @ Wk + bk
scores_school = Q @ K_school.T / np.sqrt(4)  # same words, same queries before "school"
for label, softmax in [("-inf mask", lambda s: np.asarray(masked_softmax(s, allowed))),
                       ("0 mask", lambda s: np.asarray(ops.softmax(
                           np.where(allowed, s, 0.0))))]:
    before = softmax(scores) @ V
    after = softmax(scores_school) @ V_school
    change = np.abs(before[:4] - after[:4]).max()
    print(f"{label:>9}: outputs of 'I like going to' change by {change:.6f} when "
          "'movies' becomes 'school'")

figure, axes = plt.subplots(1, 2, figsize=(10, 4.5))
heat_map(axes[0], minus_inf, TOKENS, TOKENS, "mask = -inf: the future is exactly 0")
heat_map(axes[1], zero, TOKENS, TOKENS, "mask = 0: the future leaks")
figure.tight_layout()
figure.savefig(OUT / "mask_minus_inf_vs_zero.png", dpi=100)
plt.close(figure)
show(OUT / "mask_minus_inf_vs_zero.png")

# %% [markdown]
# ## 4. Multi-head attention
#
# h heads each project to their own d_k = d_model / h dimensions, attend on their own,
# and their outputs are concatenated and projected by W^O. Each head can look for
# something different. Here 2 heads of 4 dimensions, computed by the layer and by hand.

# %%
heads = MultiHeadAttention(num_heads=2, head_dim=4)
output, weights = heads.attend(x, x)  # (1, 5, 8) and (1, h, 5, 5)
print("output", tuple(output.shape), " weights", tuple(weights.shape))


def projection(layer):
    return X @ np.asarray(layer.kernel) + np.asarray(layer.bias)


def split(matrix):  # (T, h * d_k) -> (h, T, d_k)
    return matrix.reshape(5, 2, 4).transpose(1, 0, 2)


q, k, v = (split(projection(layer)) for layer in
           (heads.query_dense, heads.key_dense, heads.value_dense))
by_hand = []
for head in range(2):
    head_scores = q[head] @ k[head].T / np.sqrt(4)
    head_weights = np.exp(head_scores) / np.exp(head_scores).sum(-1, keepdims=True)
    by_hand.append(head_weights @ v[head])  # (T, d_k)
    print(f"head {head + 1}:")
    table(head_weights, TOKENS, TOKENS)
concatenated = np.concatenate(by_hand, axis=-1)  # (T, h * d_k)
by_hand_output = concatenated @ np.asarray(heads.output_dense.kernel) + np.asarray(
    heads.output_dense.bias)
print("Concat(head_1, head_2) W^O equals the layer's output:",
      np.allclose(by_hand_output, np.asarray(output[0]), atol=1e-5))

# %% [markdown]
# ## 5. An encoder block
#
# Self-attention, then a position-wise feed-forward network, each followed by Add &
# Norm (a residual connection and layer normalization). Padding is masked out the same
# way as the future: its keys get -inf, so nobody attends to it.

# %%
padded = ids("I like going to movies [PAD] [PAD]")
block = EncoderBlock(num_heads=2, d_ff=16)
encoded, block_weights = block.forward(embedding(padded),
                                       attention_mask=key_padding_mask(padded))
print("encoded", tuple(encoded.shape), " weights", tuple(block_weights.shape))
print("head 1 (columns of padding are exactly 0):")
padded_tokens = TOKENS + ["[PAD]", "[PAD]"]
table(block_weights[0, 0], padded_tokens, padded_tokens)
encoded = np.asarray(encoded[0, :5])
print("after the last Add & Norm, each token has mean", encoded.mean(-1).round(3),
      "and standard deviation", encoded.std(-1).round(2))

# %% [markdown]
# ## 6. A trained model, decoding one token at a time
#
# The encoder reads the English sentence once. Each decoder layer projects the encoder
# output once into the cross-attention keys K and values V. Then the decoder starts from
# [START] and, at each step, reads the last token, attends over its own earlier tokens
# (their keys and values are kept in a fixed-size cache) and over the source's K and V,
# and picks the most likely next token, until [END].

# %%
from keras_transformer.engines import load_translator  # noqa: E402
from keras_transformer.generation import decoding  # noqa: E402

RUN = Path(os.environ.get("TOUR_RUN", "runs/default"))
try:
    translator = load_translator(RUN)
    print(f"using the trained run {RUN}")
except FileNotFoundError:
    from keras_transformer.training.job import train
    from keras_transformer.training.settings import TrainSettings
    from pipelines.default_data import generate_pairs

    print(f"no trained run at {RUN}: training a tiny model on 3,000 pairs of the embedded "
          "data for half a minute")
    pairs = OUT / "pairs.tsv"
    pairs.write_text("".join(f"{s}\t{t}\n" for s, t in generate_pairs(3000, seed=3)),
                     encoding="utf-8")
    RUN = OUT / "tiny_run"
    # float32: at this size bfloat16 is slower on CPUs, not faster; 4 epochs of 400 steps
    # reach validation BLEU ~70, enough to see attention line up.
    train(TrainSettings(data=str(pairs), preset="tiny", vocab_size=1000, batch_tokens=1024,
                        warmup_steps=100, learning_rate_scale=1.0, epochs=4, seed=0,
                        mixed_precision="float32", tune_alpha=False),
          RUN, examples=0, verbose=0, log=lambda *a: None)
    translator = load_translator(RUN)

parts = translator.parts
source_token = translator.source_tokenizer.id_to_token
target_token = translator.target_tokenizer.id_to_token
SENTENCE = "The three black cats see the red houses."
source = np.asarray(translator.source_ids([SENTENCE]))
source_tokens = [source_token(int(i)) for i in source[0]]
print("source tokens:", source_tokens)

# %%
encoder_outputs, source_mask = parts.encode(source)  # once per sentence
cross_key_values = parts.cross_key_values(encoder_outputs)  # per layer: (K, V) of the source
K, V = cross_key_values[0]
print("encoder output", tuple(encoder_outputs.shape), "-> layer 1's K", tuple(K.shape),
      "and V", tuple(V.shape), "(batch, heads, source tokens, d_k)")

cache = parts.empty_cache(1, translator.max_length)  # the decoder's own keys and values
token = np.array([[decoding.START_ID]], "int32")
outputs, step_self_weights = [], []
for step in range(translator.max_length):
    logits, cache, self_weights, cross_weights = parts.decode_step(
        token, step, cache, cross_key_values, source_mask)
    chosen = int(np.argmax(np.asarray(decoding.forbid_reserved(logits))[0]))
    looked_at = np.asarray(cross_weights[-1])[0, :, 0].mean(0)  # last layer, mean of heads
    print(f"step {step:2d}: reads {target_token(int(token[0, 0])):>9}, writes "
          f"{target_token(chosen):>9}, looks most at '{source_tokens[looked_at.argmax()]}'")
    outputs.append(chosen)
    step_self_weights.append(np.asarray(self_weights[-1])[0, :, 0, :step + 1])
    token = np.array([[chosen]], "int32")
    if chosen == decoding.END_ID:
        break
print("\nby hand:   ", " ".join(target_token(i) for i in outputs))
print("translate: ", translator.translate([SENTENCE])[0])

# %% [markdown]
# `translator.attention` runs the same cached decoding (the search `translate` uses) and
# keeps every weight it computed: the encoder's self-attention, the decoder's masked
# self-attention and the cross-attention, for every layer and head. Our hand-made loop
# computed the same masked self-attention, row by row.

# %%
maps = translator.attention(SENTENCE)
print("same tokens:", maps.output_tokens == [target_token(i) for i in outputs])
print("same masked self-attention, last layer:", all(
    np.allclose(maps.masked[-1, :, step, :step + 1], row, atol=1e-5)
    for step, row in enumerate(step_self_weights)))
print("above the diagonal:", float(np.triu(maps.masked, k=1).max()),
      "  rows sum to 1:", bool(np.allclose(maps.masked.sum(-1), 1.0, atol=1e-5)))

from keras_transformer.viz.attention_page import write_attention_page  # noqa: E402
from keras_transformer.viz.plots import plot_attention  # noqa: E402

show(plot_attention(maps, OUT / "masked_self_attention.png", kinds=("masked",), layers=[-1]))
show(plot_attention(maps, OUT / "cross_attention.png", kinds=("cross",), layers=[-1]))
page = write_attention_page(maps, OUT / "attention.html")
print(f"open {page} in a browser: pick layer, head and kind, hover a cell to read it")

# %% [markdown]
# ## Where next
#
# - `keras_transformer/layers/`: one file per box of the paper's Figure 1.
# - `python -m keras_transformer attention runs/default "Your sentence." --html a.html`
#   draws the same figures, and the page, for any sentence.
# - `keras_transformer/generation/decoding.py`: greedy, beam search and sampling, all built on the
#   step you just ran by hand.
