"""A Marian (OPUS-MT) model as our Transformer: its options as a `TransformerConfig`, its weights in
our layers, its vocabulary in our id layout, written as an ordinary run directory.

Marian's Transformer is the paper's (post-norm, sinusoidal positions, shared embeddings) with a
few variants, each a `TransformerConfig` option: the feed-forward's activation (swish for most
OPUS-MT models), sinusoids laid out as all sines then all cosines, a bias on the tied output
projection, and sources framed as pieces + `</s>` with no start token. Its decoder starts from a
zero vector instead of a start token's embedding.

The ids: Marian's vocabulary puts `</s>` at 0 and `<unk>` at 1 and has no padding or start token;
ours reserves [PAD]=0, [UNK]=1, [START]=2, [END]=3 (`pipelines.special_tokens`), which every mask,
search and export assumes. So the vocabulary is reordered at import, rows of the embedding and the
output bias with it: [PAD] and [START] get zero rows (the zero vector Marian's decoder starts
from), [UNK] and [END] Marian's `<unk>` and `</s>`, then every other piece in Marian's order. The
model computes the same function of the same pieces; `source.vocab.json` / `target.vocab.json`
in the run keep the pieces id by id, and the tokenizers map SentencePiece's pieces to these ids
(a piece the vocabulary lacks to [UNK], as Marian's tokenizer does).
"""

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from keras_transformer.config import TransformerConfig
from keras_transformer.pretrained.marian_files import UnsupportedCheckpoint, read_marian
from pipelines.special_tokens import END_ID, RESERVED_TOKENS, UNK_ID

MARIAN_END, MARIAN_UNK = "</s>", "<unk>"
# Marian's activation option -> ours ("gelu_exact": Hugging Face's "gelu", the erf one)
ACTIVATIONS = {"relu": "relu", "swish": "swish", "gelu": "gelu_sigmoid", "gelu_exact": "gelu"}
DEFAULT_MAX_LENGTH = 512  # OPUS-MT's max_position_embeddings; sinusoids have no limit of their own


def check_supported(checkpoint):
    """Raise `UnsupportedCheckpoint`, naming every option we cannot represent, or return."""
    options, tensors = checkpoint.options, checkpoint.tensors
    problems = []

    def need(condition, message):
        if not condition:
            problems.append(message)

    need(options.get("type", "transformer") == "transformer",
         f"--type {options.get('type')} (only 'transformer')")
    need(options.get("transformer-decoder-autoreg", "self-attention") == "self-attention",
         f"--transformer-decoder-autoreg {options.get('transformer-decoder-autoreg')} (an "
         "SSRU/AAN student decoder; only 'self-attention')")
    need(not options.get("transformer-no-projection", False), "--transformer-no-projection")
    need(options.get("transformer-ffn-activation", "swish") in ACTIVATIONS,
         f"--transformer-ffn-activation {options.get('transformer-ffn-activation')} "
         f"(supported: relu, swish, gelu)")
    need(options.get("enc-depth") == options.get("dec-depth"),
         f"--enc-depth {options.get('enc-depth')} with --dec-depth {options.get('dec-depth')} "
         "(our encoder and decoder have one depth, num_layers)")
    for option in ("transformer-ffn-depth", "transformer-decoder-ffn-depth"):
        need(options.get(option, 2) in (0, 2),
             f"--{option} {options.get(option)} (a feed-forward of two layers only)")
    decoder_ffn = options.get("transformer-decoder-dim-ffn") or options.get("transformer-dim-ffn")
    need(decoder_ffn == options.get("transformer-dim-ffn"),
         f"--transformer-decoder-dim-ffn {decoder_ffn} differing from --transformer-dim-ffn")
    decoder_heads = options.get("transformer-decoder-heads") or options.get("transformer-heads")
    need(decoder_heads == options.get("transformer-heads"),
         f"--transformer-decoder-heads {decoder_heads} differing from --transformer-heads")
    need("n" not in options.get("transformer-postprocess-emb", "d"),
         f"--transformer-postprocess-emb {options.get('transformer-postprocess-emb')} (a layer "
         "norm on the embeddings)")
    preprocess = options.get("transformer-preprocess", "")
    postprocess = options.get("transformer-postprocess", "dan")
    top = options.get("transformer-postprocess-top", "")
    need((preprocess, postprocess, top) in (("", "dan", ""), ("n", "da", "n")),
         f"--transformer-preprocess '{preprocess}' --transformer-postprocess '{postprocess}' "
         f"--transformer-postprocess-top '{top}' (supported: post-norm '' / dan / '', or "
         "pre-norm n / da / n)")
    need(not options.get("right-left", False), "--right-left (a right-to-left model)")
    need(not any(name.endswith("_Wpos") or name == "Wpos" for name in tensors)
         and options.get("hf-static-position-embeddings", True),
         "learned position embeddings (--transformer-train-position-embeddings)")
    need(MARIAN_END in checkpoint.target_vocabulary, f"a target vocabulary without {MARIAN_END}")
    if problems:
        raise UnsupportedCheckpoint("this Marian model uses what keras-transformer does not "
                                    "support: " + "; ".join(problems))


def language_tokens(vocabulary) -> list:
    """The `>>xxx<<` target-language pieces of a multilingual model's vocabulary."""
    return [piece for piece in vocabulary
            if piece.startswith(">>") and piece.endswith("<<") and len(piece) > 4]


def transformer_config(checkpoint, max_length=None) -> TransformerConfig:
    """Our `TransformerConfig` of a supported checkpoint."""
    options, tensors = checkpoint.options, checkpoint.tensors
    shared = "Wemb" in tensors
    source_rows = tensors["Wemb" if shared else "encoder_Wemb"].shape[0]
    target_rows = tensors["Wemb" if shared else "decoder_Wemb"].shape[0]
    if (source_rows, target_rows) != (len(checkpoint.source_vocabulary),
                                      len(checkpoint.target_vocabulary)):
        raise ValueError(f"the embeddings have {source_rows} and {target_rows} rows, the "
                         f"vocabularies {len(checkpoint.source_vocabulary)} and "
                         f"{len(checkpoint.target_vocabulary)} pieces")
    return TransformerConfig(
        source_vocab_size=len(reordered(checkpoint.source_vocabulary)),
        target_vocab_size=len(reordered(checkpoint.target_vocabulary)),
        num_layers=int(options["enc-depth"]),
        d_model=int(tensors["Wemb" if shared else "decoder_Wemb"].shape[1]),
        num_heads=int(options["transformer-heads"]),
        d_ff=int(options["transformer-dim-ffn"]),
        dropout=float(options.get("transformer-dropout", 0.1)),
        ffn_dropout=float(options.get("transformer-dropout-ffn", 0.0)),
        attention_dropout=float(options.get("transformer-dropout-attention", 0.0)),
        max_length=int(max_length or DEFAULT_MAX_LENGTH),
        norm_position="pre" if "n" in options.get("transformer-preprocess", "") else "post",
        share_embeddings=shared,
        tie_output_embeddings="decoder_ff_logit_out_W" not in tensors,
        output_bias="decoder_ff_logit_out_b" in tensors,
        activation=ACTIVATIONS[options.get("transformer-ffn-activation", "swish")],
        position_layout="sines_then_cosines",
        scale_embeddings=bool(options.get("hf-scale-embedding", True)),
        source_start_token=False,
    )


def reordered(vocabulary) -> list:
    """Marian's pieces in our id layout: RESERVED_TOKENS, then every other piece in order."""
    special = {MARIAN_END, MARIAN_UNK}
    return list(RESERVED_TOKENS) + [piece for piece in vocabulary if piece not in special]


def reordered_rows(vocabulary, matrix):
    """Rows of `matrix` (Marian's ids first axis) in `reordered(vocabulary)`'s order: zeros for
    [PAD] and [START], Marian's `<unk>` and `</s>` rows for [UNK] and [END]."""
    index = {piece: i for i, piece in enumerate(vocabulary)}
    zero = np.zeros_like(matrix[:1])
    unk = matrix[[index[MARIAN_UNK]]] if MARIAN_UNK in index else zero
    special = {MARIAN_END, MARIAN_UNK}
    rest = [i for i, piece in enumerate(vocabulary) if piece not in special]
    reserved = [zero, unk, zero, matrix[[index[MARIAN_END]]]]
    assert RESERVED_TOKENS[UNK_ID] == "[UNK]" and RESERVED_TOKENS[END_ID] == "[END]"
    return np.concatenate(reserved + [matrix[rest]], axis=0)


def build_model(checkpoint, config):
    """Our float32 `Transformer` of `config` holding the checkpoint's weights."""
    import keras

    from keras_transformer.model import build_transformer

    tensors = checkpoint.tensors
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        model = build_transformer(config)
    finally:
        keras.config.set_dtype_policy(policy)
    parts = model.parts
    used = set()

    def take(name):
        if name not in tensors:
            raise ValueError(f"the checkpoint lacks the tensor {name}")
        used.add(name)
        return tensors[name]

    def assign(variable, value):
        value = np.asarray(value, np.float32)
        if tuple(variable.shape) != value.shape:
            raise ValueError(f"{variable.path}: shape {tuple(variable.shape)}, the checkpoint's "
                             f"{value.shape}")
        variable.assign(value)

    source_vocabulary, target_vocabulary = checkpoint.source_vocabulary, checkpoint.target_vocabulary
    if config.share_embeddings:
        assign(parts.target_embedding.token_embedding.embeddings,
               reordered_rows(target_vocabulary, take("Wemb")))
    else:
        assign(parts.source_embedding.token_embedding.embeddings,
               reordered_rows(source_vocabulary, take("encoder_Wemb")))
        assign(parts.target_embedding.token_embedding.embeddings,
               reordered_rows(target_vocabulary, take("decoder_Wemb")))

    pre = "_pre" if config.norm_position == "pre" else ""

    def dense(layer, name):  # name: the matrix's, "..._Wq"; its bias is "..._bq"
        assign(layer.kernel, take(name))
        assign(layer.bias, take(name.replace("_W", "_b")))

    def norm(connection, name):
        assign(connection.norm.gamma, take(f"{name}_ln_scale{pre}"))
        assign(connection.norm.beta, take(f"{name}_ln_bias{pre}"))

    def attention(layer, connection, scope):
        for ours, suffix in (("query_dense", "q"), ("key_dense", "k"), ("value_dense", "v"),
                             ("output_dense", "o")):
            dense(getattr(layer, ours), f"{scope}_W{suffix}")
        norm(connection, f"{scope}_Wo")

    def feed_forward(block, scope):
        dense(block.feed_forward.inner_dense, f"{scope}_ffn_W1")
        dense(block.feed_forward.outer_dense, f"{scope}_ffn_W2")
        norm(block.feed_forward_connection, f"{scope}_ffn_ffn")

    for i, block in enumerate(parts.encoder_blocks, 1):
        attention(block.self_attention, block.self_attention_connection, f"encoder_l{i}_self")
        feed_forward(block, f"encoder_l{i}")
    for i, block in enumerate(parts.decoder_blocks, 1):
        attention(block.self_attention, block.self_attention_connection, f"decoder_l{i}_self")
        attention(block.cross_attention, block.cross_attention_connection,
                  f"decoder_l{i}_context")
        feed_forward(block, f"decoder_l{i}")
    if config.norm_position == "pre":
        for layer, scope in ((parts.encoder_norm, "encoder_top"), (parts.decoder_norm, "decoder_top")):
            assign(layer.gamma, take(f"{scope}_ln_scale"))
            assign(layer.beta, take(f"{scope}_ln_bias"))
    if parts.output_projection is not None:
        kernel = take("decoder_ff_logit_out_W")
        assign(parts.output_projection.kernel, reordered_rows(target_vocabulary, kernel.T).T)
        assign(parts.output_projection.bias,
               reordered_rows(target_vocabulary, take("decoder_ff_logit_out_b")[:, None])[:, 0])
    elif parts.output_bias is not None:
        assign(parts.output_bias.bias,
               reordered_rows(target_vocabulary, take("decoder_ff_logit_out_b")[:, None])[:, 0])
    unused = sorted(set(tensors) - used)
    if unused:
        raise UnsupportedCheckpoint(f"tensors this model has no place for: {unused[:8]}"
                                    f"{' ...' if len(unused) > 8 else ''}")
    return model


def import_marian(model_dir, out, max_length=None, target_language=None, log=print):
    """Writes the Marian model in `model_dir` (either layout) as a run directory `out` that
    `translate`, `evaluate`, `attention` and `export` read as any run. `out` must not exist (or
    be empty); it is written whole or not at all. Returns `out` as a Path.

    A multilingual model (`>>xxx<<` target-language tokens in its vocabulary) needs
    `target_language` (xxx): the run's default, which `translate --target-language` overrides;
    its token starts every source, as Marian's multilingual models were trained.
    """
    from keras_transformer.run_dir import RunDir, write_atomically
    from pipelines.tokenizers import SentencePieceTokenizer

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not empty: choose another --out")
    checkpoint = read_marian(model_dir)
    check_supported(checkpoint)
    languages = language_tokens(checkpoint.source_vocabulary)
    if languages and f">>{target_language}<<" not in languages:
        raise UnsupportedCheckpoint(
            f"this model translates into {len(languages)} languages: choose one with "
            f"--target-language ({', '.join(t[2:-2] for t in languages)}); got "
            f"{target_language!r}")
    if target_language and not languages:
        raise UnsupportedCheckpoint("this model translates into one language only: leave out "
                                    "--target-language")
    config = transformer_config(checkpoint, max_length)
    log(f"{checkpoint.origin['layout']} layout, {checkpoint.origin['weights']}: "
        f"{config.num_layers}+{config.num_layers} layers, d_model {config.d_model}, "
        f"{config.num_heads} heads, d_ff {config.d_ff}, {config.activation}, vocabulary "
        f"{len(checkpoint.target_vocabulary):,} pieces"
        f"{' (shared)' if config.share_embeddings else ''}")
    model = build_model(checkpoint, config)
    source = SentencePieceTokenizer(checkpoint.source_spm, reordered(checkpoint.source_vocabulary))
    target = SentencePieceTokenizer(checkpoint.target_spm, reordered(checkpoint.target_vocabulary))

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        run = RunDir(staging)
        run.save_config(config)
        source.save(run.source_tokenizer, run.source_vocabulary)
        target.save(run.target_tokenizer, run.target_vocabulary)
        model.save(run.best_model)
        write_atomically(run.pretrained_file, json.dumps(
            {**checkpoint.origin, "source": str(Path(model_dir).resolve()), "family": "marian",
             "language_tokens": languages, "target_language": target_language},
            indent=2, sort_keys=True))
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"wrote {out}: translate it with `python -m keras_transformer translate {out} "
        "\"A sentence.\"`")
    return out
