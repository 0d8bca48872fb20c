"""Random Marian models of any shape, in both published layouts: what the import's tests and
benchmark use where real weights cannot be downloaded.

`random_marian_tensors` draws weights under Marian's tensor names; `write_marian_release` writes
them as Marian does (model.npz with its `special:model.yml`, a vocab.yml, source.spm, target.spm)
and `write_hugging_face` as Hugging Face's MarianMTModel does (config.json, vocab.json with
`<pad>` appended, model.safetensors or tf_model.h5 under its tensor names, matrices (out, in)).

Random Transformers tend to repeat one piece forever (a tied embedding makes the last token its
own best successor). Small embeddings, a large gain on the decoder's last norm and a random
output bias give outputs that vary with the source and its word order, so a wrong position
layout or id map changes the tokens.
"""

import json
from pathlib import Path

import numpy as np

from keras_transformer.pretrained.marian_files import HF_PAD


def random_marian_tensors(vocab_size, layers=2, d_model=32, heads=4, d_ff=64, seed=0,
                          pre_norm=False, embedding_scale=1.0, bias_scale=0.1, gain=8.0,
                          decoder_gain=8.0):
    """{Marian tensor name: float32 array} of a shared-vocabulary Transformer.

    `gain` scales the decoder's last norm; `decoder_gain` the decoder's cross-attention values
    and outputs and its feed-forward outputs, so that they, not the residual that carries the
    current token, choose the next one (tried on the en-mg vocabulary: outputs that differ from
    sentence to sentence, where 0.1-scale embeddings repeated one piece forever).
    """
    rng = np.random.default_rng(seed)

    def normal(*shape, scale):
        return rng.normal(0.0, scale, shape).astype(np.float32)

    tensors = {"Wemb": normal(vocab_size, d_model, scale=embedding_scale),
               "decoder_ff_logit_out_b": normal(1, vocab_size, scale=bias_scale)}
    suffix = "_pre" if pre_norm else ""

    def norm(name, gain=1.0):
        tensors[f"{name}_ln_scale{suffix}"] = (gain * (1.0 + normal(1, d_model, scale=0.1)))
        tensors[f"{name}_ln_bias{suffix}"] = normal(1, d_model, scale=0.1)

    def attention(scope):
        for part in "qkvo":
            tensors[f"{scope}_W{part}"] = normal(d_model, d_model, scale=d_model ** -0.5)
            tensors[f"{scope}_b{part}"] = normal(1, d_model, scale=0.02)
        norm(f"{scope}_Wo")

    def feed_forward(scope, gain=1.0):
        tensors[f"{scope}_ffn_W1"] = normal(d_model, d_ff, scale=d_model ** -0.5)
        tensors[f"{scope}_ffn_b1"] = normal(1, d_ff, scale=0.02)
        tensors[f"{scope}_ffn_W2"] = normal(d_ff, d_model, scale=d_ff ** -0.5)
        tensors[f"{scope}_ffn_b2"] = normal(1, d_model, scale=0.02)
        norm(f"{scope}_ffn_ffn", gain)

    for i in range(1, layers + 1):
        attention(f"encoder_l{i}_self")
        feed_forward(f"encoder_l{i}")
        attention(f"decoder_l{i}_self")
        attention(f"decoder_l{i}_context")
        feed_forward(f"decoder_l{i}", gain=gain if i == layers and not pre_norm else 1.0)
        for name in (f"decoder_l{i}_context_Wv", f"decoder_l{i}_context_Wo",
                     f"decoder_l{i}_ffn_W2"):
            tensors[name] *= decoder_gain
    if pre_norm:
        for scope, gain in (("encoder_top", 1.0), ("decoder_top", gain)):
            tensors[f"{scope}_ln_scale"] = gain * (1.0 + normal(1, d_model, scale=0.1))
            tensors[f"{scope}_ln_bias"] = normal(1, d_model, scale=0.1)
    return tensors


def marian_options(layers, d_model, heads, d_ff, activation="swish", pre_norm=False, **more):
    """The model.yml options of such a model (Marian's names)."""
    return {"type": "transformer", "enc-depth": layers, "dec-depth": layers,
            "dim-emb": d_model, "transformer-heads": heads, "transformer-dim-ffn": d_ff,
            "transformer-ffn-depth": 2, "transformer-ffn-activation": activation,
            "transformer-preprocess": "n" if pre_norm else "",
            "transformer-postprocess": "da" if pre_norm else "dan",
            "transformer-postprocess-emb": "d", "transformer-postprocess-top": "n" if pre_norm else "",
            "transformer-decoder-autoreg": "self-attention", "transformer-no-projection": False,
            "transformer-guided-alignment-layer": "last", "tied-embeddings-all": True,
            "transformer-dropout": 0.1, **more}


def write_marian_release(directory, tensors, options, vocabulary, source_spm, target_spm):
    """Marian's release layout in `directory`: model.npz, vocab.yml (one, shared), decoder.yml,
    source.spm, target.spm. `vocabulary`: pieces in Marian's id order (no `<pad>`)."""
    import yaml

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_yml = yaml.safe_dump(options).encode() + b"\0"
    np.savez(directory / "model.npz", **tensors,
             **{"special:model.yml": np.frombuffer(model_yml, np.int8)})
    lines = [f'"{_escaped(piece)}": {index}' for index, piece in enumerate(vocabulary)]
    (directory / "vocab.yml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (directory / "decoder.yml").write_text(yaml.safe_dump(
        {"models": ["model.npz"], "vocabs": ["vocab.yml", "vocab.yml"], "beam-size": 4}))
    (directory / "source.spm").write_bytes(source_spm)
    (directory / "target.spm").write_bytes(target_spm)
    return directory


def _escaped(piece):
    return piece.replace("\\", "\\\\").replace('"', '\\"')


def hugging_face_tensors(tensors, vocab_size, layers):
    """Marian's tensors under MarianMTModel's names: `<pad>`'s zero row appended, (out, in)."""
    def padded(matrix):
        return np.concatenate([matrix, np.zeros_like(matrix[:1])], axis=0)

    names = {"self_Wq": "self_attn.q_proj", "self_Wk": "self_attn.k_proj",
             "self_Wv": "self_attn.v_proj", "self_Wo": "self_attn.out_proj",
             "context_Wq": "encoder_attn.q_proj", "context_Wk": "encoder_attn.k_proj",
             "context_Wv": "encoder_attn.v_proj", "context_Wo": "encoder_attn.out_proj",
             "ffn_W1": "fc1", "ffn_W2": "fc2"}
    norms = {"self_Wo_ln": "self_attn_layer_norm", "context_Wo_ln": "encoder_attn_layer_norm",
             "ffn_ffn_ln": "final_layer_norm"}
    shared = padded(tensors["Wemb"])
    hf = {"model.shared.weight": shared, "model.encoder.embed_tokens.weight": shared,
          "model.decoder.embed_tokens.weight": shared, "lm_head.weight": shared,
          "final_logits_bias": padded(tensors["decoder_ff_logit_out_b"].reshape(-1, 1)).T}
    for scope in ("encoder", "decoder"):
        for i in range(1, layers + 1):
            prefix = f"{scope}_l{i}_"
            for marian, module in names.items():
                if prefix + marian not in tensors:
                    continue
                base = f"model.{scope}.layers.{i - 1}.{module}"
                hf[f"{base}.weight"] = tensors[prefix + marian].T.copy()
                hf[f"{base}.bias"] = tensors[prefix + marian.replace("_W", "_b")].reshape(-1)
            for marian, module in norms.items():
                if prefix + marian + "_scale" not in tensors:
                    continue
                base = f"model.{scope}.layers.{i - 1}.{module}"
                hf[f"{base}.weight"] = tensors[prefix + marian + "_scale"].reshape(-1)
                hf[f"{base}.bias"] = tensors[prefix + marian + "_bias"].reshape(-1)
    return hf


def write_hugging_face(directory, tensors, options, vocabulary, source_spm, target_spm,
                       weights="model.safetensors"):
    """Hugging Face's MarianMTModel layout in `directory`; `weights` names the file written
    (model.safetensors, or tf_model.h5 under TFMarianMTModel's Keras names)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    layers = options["enc-depth"]
    vocab = {piece: index for index, piece in enumerate(vocabulary)}
    vocab[HF_PAD] = len(vocabulary)
    hf = hugging_face_tensors(tensors, len(vocabulary), layers)
    if weights == "model.safetensors":
        from safetensors.numpy import save_file

        save_file({name: np.ascontiguousarray(value) for name, value in hf.items()},
                  str(directory / weights))
    elif weights == "tf_model.h5":
        _write_tf_h5(directory / weights, hf)
    else:
        raise ValueError(f"unknown weights file {weights}")
    activation = options["transformer-ffn-activation"]  # Marian's gelu has no HF name: not here
    config = {
        "model_type": "marian", "architectures": ["MarianMTModel"],
        "d_model": options["dim-emb"], "encoder_layers": layers, "decoder_layers": layers,
        "encoder_attention_heads": options["transformer-heads"],
        "decoder_attention_heads": options["transformer-heads"],
        "encoder_ffn_dim": options["transformer-dim-ffn"],
        "decoder_ffn_dim": options["transformer-dim-ffn"], "activation_function": activation,
        "vocab_size": len(vocab), "pad_token_id": len(vocabulary),
        "decoder_start_token_id": len(vocabulary), "eos_token_id": vocab["</s>"],
        "max_position_embeddings": 512, "scale_embedding": True,
        "static_position_embeddings": True, "normalize_before": False,
        "normalize_embedding": False, "dropout": 0.1, "attention_dropout": 0.0,
        "activation_dropout": 0.0}
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False),
                                          encoding="utf-8")
    (directory / "source.spm").write_bytes(source_spm)
    (directory / "target.spm").write_bytes(target_spm)
    return directory


def _write_tf_h5(path, hf):
    """TFMarianMTModel's weights file: Keras 2 h5 groups, kernels (in, out), norms gamma/beta."""
    import h5py

    with h5py.File(path, "w") as file:
        root = "model/tf_marian_mt_model/model"
        for name, value in hf.items():
            if name.startswith(("model.encoder.embed_tokens", "model.decoder.embed_tokens",
                                "lm_head")):
                continue
            if name == "model.shared.weight":
                file[f"{root}/model.shared/model.shared/weight:0"] = value
            elif name == "final_logits_bias":
                file["model/tf_marian_mt_model/final_logits_bias/final_logits_bias:0"] = value
            else:
                _, scope, layer, index, *module, kind = name.split(".")
                norm = module[-1].endswith("layer_norm")
                leaf = {"weight": "gamma" if norm else "kernel", "bias": "beta" if norm else "bias"}
                array = value.T if leaf[kind] == "kernel" else value
                file[f"{root}/{scope}/{layer}.{index}/{'/'.join(module)}/{leaf[kind]}:0"] = array
