"""A CTranslate2 model directory from a Transformer: every weight mapped onto the engine's
`TransformerSpec`, with the vocabularies and the SentencePiece models a server needs.

    OUT/N/
      model.bin                the weights (float32, or quantized: int8, float16, ...)
      config.json              CTranslate2's: [START]/[END]/[UNK], add [START]/[END] to sources,
                               our layer-norm epsilon
      source_vocabulary.json   the SentencePiece pieces, id by id ("shared_vocabulary.json" when
      target_vocabulary.json   both are the same)
      source.spm  target.spm   the run's SentencePiece models (normalization included)
      keras_transformer.json   max_length, beam settings: what our engine needs to translate as
                               the Keras model does

The mapping (Keras layer -> spec), the same for post-norm and pre-norm (CTranslate2 puts each
sublayer's norm where `pre_norm` says, as our `SublayerConnection` does):

    source/target PositionalEmbedding  embeddings.weight (x sqrt(d_model): scale_embeddings),
                                       position_encodings.encodings: our own table, sinusoidal
                                       (interleaved sin/cos) or learned, max_length rows
    MultiHeadAttention (self)          linear[0] = [Wq; Wk; Wv] fused, linear[1] = W^O
    MultiHeadAttention (cross)         linear[0] = Wq, linear[1] = [Wk; Wv], linear[2] = W^O
    SublayerConnection.norm            the sublayer's layer_norm
    FeedForward                        linear_0, linear_1 (ReLU)
    encoder_norm / decoder_norm        encoder/decoder layer_norm (pre-norm only)
    tied embedding or output Dense     decoder.projection; its bias is -1e4 on [PAD] and [START],
                                       which decoding never generates (`decoding.forbid_reserved`)

Keras kernels are (in, out); CTranslate2's weights are (out, in), as in PyTorch. The queries are
scaled by 1/sqrt(d_k) inside the engine, as in our attention.

Imports numpy, Keras (for the weights) and `ctranslate2`, not TensorFlow.
"""

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from keras_transformer.export.ctranslate2_translator import (
    ENGINE_FILE,
    SOURCE_SPM,
    TARGET_SPM,
    require_ctranslate2,
)
from pipelines.special_tokens import END_ID, PAD_ID, RESERVED_TOKENS, START_ID, UNK_ID

QUANTIZATIONS = ("float32", "int8", "int8_float32", "float16", "int8_float16", "bfloat16")
# a bias that takes a token out of the softmax in float32 and float16 alike (exp(-1e4) = 0)
NEVER = -1e4


def _linear(spec, dense, bias=True):
    spec.weight = np.ascontiguousarray(np.asarray(dense.kernel, np.float32).T)
    if bias and dense.bias is not None:
        spec.bias = np.asarray(dense.bias, np.float32)


def _fused(spec, denses):
    """One linear of the engine from several Dense layers stacked along their outputs."""
    spec.weight = np.ascontiguousarray(np.concatenate(
        [np.asarray(d.kernel, np.float32).T for d in denses], axis=0))
    if denses[0].bias is not None:
        spec.bias = np.concatenate([np.asarray(d.bias, np.float32) for d in denses])


def _norm(spec, layer):
    spec.gamma = np.asarray(layer.gamma, np.float32)
    spec.beta = np.asarray(layer.beta, np.float32)


def _attention(spec, attention, connection, self_attention):
    q, k, v = attention.query_dense, attention.key_dense, attention.value_dense
    if self_attention:
        _fused(spec.linear[0], [q, k, v])
    else:
        _fused(spec.linear[0], [q])
        _fused(spec.linear[1], [k, v])
    _linear(spec.linear[-1], attention.output_dense)
    _norm(spec.layer_norm, connection.norm)


def _feed_forward(spec, block):
    _linear(spec.linear_0, block.feed_forward.inner_dense)
    _linear(spec.linear_1, block.feed_forward.outer_dense)
    _norm(spec.layer_norm, block.feed_forward_connection.norm)


def transformer_spec(model, source_vocabulary, target_vocabulary):
    """The `ctranslate2.specs.TransformerSpec` of a `Transformer` (float32 weights).

    Args:
        model: a `keras_transformer.model.Transformer` (its `parts` and `transformer_config`).
        source_vocabulary, target_vocabulary: the pieces, id by id (RESERVED_TOKENS first).
    """
    require_ctranslate2()
    from ctranslate2.specs import transformer_spec as ts

    config, parts = model.transformer_config, model.parts
    for name, vocabulary, size in (("source", source_vocabulary, config.source_vocab_size),
                                   ("target", target_vocabulary, config.target_vocab_size)):
        if len(vocabulary) != size or tuple(vocabulary[:len(RESERVED_TOKENS)]) != RESERVED_TOKENS:
            raise ValueError(f"the {name} vocabulary ({len(vocabulary)} pieces) does not fit the "
                             f"model ({size} ids, {RESERVED_TOKENS} first)")
    from ctranslate2.specs.common_spec import Activation

    activations = {"relu": Activation.RELU, "swish": Activation.SWISH, "gelu": Activation.GELU,
                   "gelu_sigmoid": Activation.GELUSigmoid}
    spec = ts.TransformerSpec.from_config(config.num_layers, config.num_heads,
                                          pre_norm=config.norm_position == "pre",
                                          activation=activations[config.activation])
    source_weights = np.asarray(parts.source_embedding.token_embedding.embeddings, np.float32)
    target_weights = np.asarray(parts.target_embedding.token_embedding.embeddings, np.float32)
    spec.encoder.embeddings[0].weight = source_weights
    spec.decoder.embeddings.weight = target_weights
    spec.encoder.position_encodings.encodings = np.asarray(
        parts.source_embedding.positions(config.max_length), np.float32)
    spec.decoder.position_encodings.encodings = np.asarray(
        parts.target_embedding.positions(config.max_length), np.float32)

    for layer_spec, block in zip(spec.encoder.layer, parts.encoder_blocks):
        _attention(layer_spec.self_attention, block.self_attention,
                   block.self_attention_connection, self_attention=True)
        _feed_forward(layer_spec.ffn, block)
    for layer_spec, block in zip(spec.decoder.layer, parts.decoder_blocks):
        _attention(layer_spec.self_attention, block.self_attention,
                   block.self_attention_connection, self_attention=True)
        _attention(layer_spec.attention, block.cross_attention,
                   block.cross_attention_connection, self_attention=False)
        _feed_forward(layer_spec.ffn, block)
    if config.norm_position == "pre":
        _norm(spec.encoder.layer_norm, parts.encoder_norm)
        _norm(spec.decoder.layer_norm, parts.decoder_norm)

    if parts.output_projection is None:  # tied: logits against the target embedding matrix
        projection, bias = target_weights, np.zeros(config.target_vocab_size, np.float32)
        if parts.output_bias is not None:
            bias = np.asarray(parts.output_bias.bias, np.float32).copy()
    else:
        projection = np.asarray(parts.output_projection.kernel, np.float32).T
        bias = np.asarray(parts.output_projection.bias, np.float32).copy()
    bias[[PAD_ID, START_ID]] = NEVER
    spec.decoder.projection.weight = np.ascontiguousarray(projection)
    spec.decoder.projection.bias = bias

    spec.config.unk_token = RESERVED_TOKENS[UNK_ID]
    spec.config.bos_token = spec.config.decoder_start_token = RESERVED_TOKENS[START_ID]
    spec.config.eos_token = RESERVED_TOKENS[END_ID]
    spec.config.add_source_eos = True  # [START] x [END], or x [END]
    spec.config.add_source_bos = bool(config.source_start_token)
    if not config.scale_embeddings:
        spec.encoder.scale_embeddings = spec.decoder.scale_embeddings = False
    spec.config.layer_norm_epsilon = float(config.layer_norm_epsilon)
    spec.register_source_vocabulary(list(source_vocabulary))
    spec.register_target_vocabulary(list(target_vocabulary))
    return spec


def vocabulary(spm_model_bytes):
    """The pieces of a serialized SentencePiece model, id by id."""
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_proto=spm_model_bytes)
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())]


def write_ctranslate2(model, source_spm, target_spm, directory, quantization="float32",
                      beam_size=4, alpha=0.6, vocabularies=None, languages=None):
    """Writes the CTranslate2 model directory of `model` to `directory` (created; it must not
    exist), atomically: a folder beside it renamed into place when complete.

    Args:
        source_spm, target_spm: the serialized SentencePiece models (bytes).
        quantization: the weights' type in model.bin (QUANTIZATIONS); CTranslate2 can also
            quantize a float32 directory when loading it (`compute_type`).
        beam_size, alpha: the beam settings our engine uses by default (keras_transformer.json).
        vocabularies: (source, target) pieces id by id, where the model's ids are not the
            SentencePiece models' (an imported model: `RunDir.vocabularies`).
        languages: a multilingual model's {"language_tokens": [...], "target_language": ...}
            (`RunDir.languages`), written for the engine.
    Returns:
        the directory.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; choose from {QUANTIZATIONS}")
    directory = Path(directory)
    if directory.exists():
        raise FileExistsError(f"{directory} exists")
    if vocabularies is None:
        vocabularies = vocabulary(source_spm), vocabulary(target_spm)
    spec = transformer_spec(model, *vocabularies)
    spec.validate()
    spec.optimize(quantization=quantization)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        spec.save(str(staging))
        (staging / SOURCE_SPM).write_bytes(source_spm)
        (staging / TARGET_SPM).write_bytes(target_spm)
        config = model.transformer_config
        (staging / ENGINE_FILE).write_text(json.dumps({
            "max_length": config.max_length, "beam_size": beam_size, "alpha": alpha,
            "quantization": quantization, "source_vocab_size": config.source_vocab_size,
            "target_vocab_size": config.target_vocab_size,
            "source_start_token": config.source_start_token, **(languages or {})},
            indent=2, sort_keys=True))
        staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def export_ctranslate2(model, source_spm, target_spm, base, *, version=None,
                       quantization="float32", beam_size=4, alpha=0.6, vocabularies=None,
                       languages=None):
    """A new version base/N/ of the CTranslate2 directory (`write_ctranslate2`); versions are
    never overwritten, as for the SavedModel (`versions`). Returns the version folder."""
    from keras_transformer.export import versions

    base = Path(base)
    versions.check_version(base, version)
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".ctranslate2-", dir=base)) / "model"
    try:
        write_ctranslate2(model, source_spm, target_spm, staging, quantization, beam_size, alpha,
                          vocabularies, languages)
        return versions.publish(staging, base, version)
    finally:
        shutil.rmtree(staging.parent, ignore_errors=True)


def export_run_ctranslate2(run_dir, out, *, version=None, quantization="float32", alpha=None,
                           beam_size=4):
    """The CTranslate2 directory of a trained run's model (`RunDir.model_file`) as a new version
    under `out`; beam search's alpha is the run's unless given."""
    from keras_transformer.run_dir import RunDir

    run = RunDir(run_dir)
    run.require_trained()
    model = run.load_model()
    return export_ctranslate2(
        model, run.source_tokenizer.read_bytes(), run.target_tokenizer.read_bytes(), out,
        version=version, quantization=quantization, beam_size=beam_size,
        alpha=run.beam_alpha() if alpha is None else alpha, vocabularies=run.vocabularies(),
        languages=run.languages())


def run_engine_directory(run_dir):
    """The run's own float32 CTranslate2 directory (RUN/ctranslate2/), converted from its model
    file when missing or older than that file: what `translate --engine ctranslate2` loads.
    Safe when several processes translate with one run at once: each conversion is written
    beside the run's and renamed into place, and a stale one is moved aside before removal."""
    from keras_transformer.run_dir import RunDir

    run = RunDir(run_dir)
    run.require_trained()
    directory = run.ctranslate2_model

    def fresh():
        engine_file = directory / "model.bin"
        return engine_file.exists() and engine_file.stat().st_mtime >= run.model_file.stat().st_mtime

    if fresh():
        return directory
    scratch = Path(tempfile.mkdtemp(prefix=".ctranslate2-", dir=run.path))
    try:
        staged = write_ctranslate2(run.load_model(), run.source_tokenizer.read_bytes(),
                                   run.target_tokenizer.read_bytes(), scratch / "new", "float32",
                                   alpha=run.beam_alpha(), vocabularies=run.vocabularies(),
                                   languages=run.languages())
        if directory.exists() and not fresh():
            try:  # aside, then removed with the scratch folder
                directory.rename(scratch / "stale")
            except FileNotFoundError:  # another process moved it first
                pass
        try:
            staged.rename(directory)
        except OSError:  # another process renamed its conversion into place first
            if not fresh():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return directory
