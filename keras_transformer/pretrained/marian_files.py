"""Reading a Marian (OPUS-MT) model in either published layout, with numpy alone.

Both layouts are read into one `MarianCheckpoint`: Marian's options (its `model.yml` keys), its
tensors under Marian's own names (`Wemb`, `encoder_l1_self_Wq`, ...; matrices (in, out), biases and
norms 1-D), the vocabularies in Marian's id order, and the two SentencePiece models.

    Marian's release             model.npz (options in its `special:model.yml` entry), decoder.yml
                                 (names the vocabularies), *.vocab.yml, source.spm, target.spm
    Hugging Face's MarianMTModel config.json, vocab.json (or source and target vocabularies),
                                 source.spm, target.spm, and the weights in model.safetensors,
                                 tf_model.h5 or pytorch_model.bin (the last only with torch)

Hugging Face appends a `<pad>` piece to Marian's vocabulary (its decoder starts from that piece's
zero embedding); it is dropped here, with its rows, as CTranslate2's converter drops it: the
vocabulary and tensors are the Marian model's. Nothing here imports TensorFlow or torch (unless
the weights are only in pytorch_model.bin).
"""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np

HF_PAD = "<pad>"


class UnsupportedCheckpoint(ValueError):
    """A checkpoint this package cannot represent; the message names the option."""


@dataclasses.dataclass
class MarianCheckpoint:
    options: dict  # Marian's model.yml options (for Hugging Face's layout: the same keys)
    tensors: dict  # Marian's tensor names -> float32 arrays
    source_vocabulary: list  # pieces in Marian's id order
    target_vocabulary: list
    source_spm: bytes
    target_spm: bytes
    origin: dict  # the layout and the files read


def read_marian(directory) -> MarianCheckpoint:
    """The Marian model in `directory` (either layout; see the module docstring)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    if (directory / "config.json").exists():
        return _read_hugging_face(directory)
    if list(directory.glob("*.npz")):
        return _read_marian_release(directory)
    raise FileNotFoundError(
        f"{directory} holds neither a Marian release (model.npz, *.vocab.yml, source.spm, "
        "target.spm) nor a Hugging Face MarianMTModel (config.json, vocab.json, source.spm, "
        "target.spm, model.safetensors)")


def _spm(directory, name):
    path = directory / name
    if not path.exists():
        raise FileNotFoundError(f"{directory}: {name} is missing (the SentencePiece model that "
                                "splits text into the model's pieces)")
    return path.read_bytes()


# ------------------------------------------------------------------------- Marian's release

def _read_marian_release(directory):
    import yaml

    decoder_yml = directory / "decoder.yml"
    settings = yaml.safe_load(decoder_yml.read_text()) if decoder_yml.exists() else {}
    models = settings.get("models") or sorted(p.name for p in directory.glob("*.npz"))
    if len(models) != 1:
        raise UnsupportedCheckpoint(f"{directory}: expected one model, found {models} (an "
                                    "ensemble is not supported)")
    vocab_files = settings.get("vocabs") or sorted(p.name for p in directory.glob("*.vocab.yml"))
    if not vocab_files:
        raise FileNotFoundError(f"{directory}: no *.vocab.yml vocabulary")
    if len(vocab_files) > 2:
        raise UnsupportedCheckpoint(f"{directory}: {len(vocab_files)} vocabularies (a "
                                    "multi-source model) are not supported")
    npz = directory / Path(models[0]).name
    with np.load(npz) as archive:
        if "special:model.yml" not in archive:
            raise UnsupportedCheckpoint(f"{npz} has no special:model.yml entry: not a Marian model")
        options = yaml.safe_load(archive["special:model.yml"][:-1].tobytes())
        tensors = {name: np.asarray(archive[name], np.float32) for name in archive.files
                   if not name.startswith("special:")}
    vocabularies = [read_vocab_yml(directory / Path(name).name) for name in vocab_files]
    return MarianCheckpoint(
        options=options, tensors=_squeezed(tensors),
        source_vocabulary=vocabularies[0], target_vocabulary=vocabularies[-1],
        source_spm=_spm(directory, "source.spm"), target_spm=_spm(directory, "target.spm"),
        origin={"layout": "marian", "weights": npz.name,
                "vocabularies": [Path(name).name for name in vocab_files]})


def read_vocab_yml(path) -> list:
    """A Marian `*.vocab.yml` (piece: id per line) as pieces in id order.

    Read line by line, as CTranslate2's converter does: YAML loaders mangle some pieces (a bare
    "null", "yes", numbers). Quoted keys are unescaped; a "? key" / ": id" pair is one entry.
    """
    entries, key = [], None
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("? "):
            key = _unquoted(line[2:])
            continue
        if key is not None and line.startswith(": "):
            piece, index = key, line[2:]
            key = None
        else:
            piece, _, index = line.rpartition(":")
            piece = _unquoted(piece)
        try:
            entries.append((int(index.strip()), piece))
        except ValueError:
            raise ValueError(f"{path}:{number}: expected 'piece: id', got {line!r}") from None
    entries.sort()
    if [index for index, _ in entries] != list(range(len(entries))):
        raise ValueError(f"{path}: the ids are not 0 .. {len(entries) - 1}")
    return [piece for _, piece in entries]


def _unquoted(text):
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return json.loads(text) if "\\x" not in text else (
            text[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape"))
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return text


def _squeezed(tensors):
    """Marian's biases and norm parameters are (1, n): 1-D here."""
    return {name: value.reshape(-1) if value.ndim == 2 and value.shape[0] == 1 else value
            for name, value in tensors.items()}


# ------------------------------------------------------------------------- Hugging Face's layout

def _read_hugging_face(directory):
    config = json.loads((directory / "config.json").read_text())
    if config.get("model_type") != "marian":
        raise UnsupportedCheckpoint(
            f"{directory}/config.json: model_type {config.get('model_type')!r}; only Marian "
            "(MarianMTModel) checkpoints are supported")
    source_vocabulary, target_vocabulary, vocab_files = _hf_vocabularies(directory, config)
    weights, weights_file = _hf_weights(directory)
    tensors, pad_rows = _hf_to_marian(weights, config, source_vocabulary, target_vocabulary)
    return MarianCheckpoint(
        options=_hf_options(config), tensors=tensors,
        source_vocabulary=_without_pad(source_vocabulary),
        target_vocabulary=_without_pad(target_vocabulary),
        source_spm=_spm(directory, "source.spm"), target_spm=_spm(directory, "target.spm"),
        origin={"layout": "hugging_face", "weights": weights_file, "vocabularies": vocab_files,
                "dropped_pad_rows": pad_rows})


def _hf_vocabularies(directory, config):
    def read(name):
        table = json.loads((directory / name).read_text(encoding="utf-8"))
        pieces = [None] * len(table)
        for piece, index in table.items():
            if not 0 <= index < len(table) or pieces[index] is not None:
                raise ValueError(f"{directory / name}: ids are not 0 .. {len(table) - 1}, once each")
            pieces[index] = piece
        return pieces

    if (directory / "vocab.json").exists():
        shared = read("vocab.json")
        if (directory / "target_vocab.json").exists():  # separate_vocabs=True
            return shared, read("target_vocab.json"), ["vocab.json", "target_vocab.json"]
        return shared, shared, ["vocab.json"]
    raise FileNotFoundError(f"{directory}: vocab.json is missing")


def _without_pad(vocabulary):
    return [piece for piece in vocabulary if piece != HF_PAD]


def _hf_weights(directory):
    """{name: float32 array} of the model's weights, from the first file found."""
    if (directory / "model.safetensors").exists():
        return read_safetensors(directory / "model.safetensors"), "model.safetensors"
    if (directory / "tf_model.h5").exists():
        return _read_tf_h5(directory / "tf_model.h5"), "tf_model.h5"
    if (directory / "pytorch_model.bin").exists():
        try:
            import torch
        except ModuleNotFoundError:
            raise UnsupportedCheckpoint(
                f"{directory} holds its weights in pytorch_model.bin only, which needs torch "
                "to read. Get model.safetensors instead (`huggingface-cli download MODEL "
                "model.safetensors`, or the model's 'refs/pr/...' safetensors conversion), or "
                "install torch") from None
        state = torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
        return ({name: value.float().numpy() for name, value in state.items()},
                "pytorch_model.bin")
    raise FileNotFoundError(f"{directory}: no weights (model.safetensors, tf_model.h5 or "
                            "pytorch_model.bin)")


def read_safetensors(path) -> dict:
    """{name: float32 array} of a .safetensors file, read with numpy (no torch)."""
    from safetensors import safe_open

    tensors = {}
    with safe_open(str(path), framework="numpy") as file:
        for name in file.keys():
            tensors[name] = np.asarray(file.get_tensor(name), np.float32)
    return tensors


def _read_tf_h5(path):
    """{torch-style name: array} of Hugging Face's TFMarianMTModel weights file: Keras's h5
    groups (`.../model/encoder/layers.0/self_attn/k_proj/kernel:0`) named as the torch module's
    (`model.encoder.layers.0.self_attn.k_proj.weight`, kernels transposed to (out, in))."""
    import h5py

    tensors = {}

    def visit(name, item):
        if not isinstance(item, h5py.Dataset):
            return
        parts = [part.split(":")[0] for part in name.split("/")]
        leaf = parts[-1]
        match = re.search(r"(encoder|decoder)/(layers\.\d+|layernorm_embedding|layer_norm)/(.*)$",
                          "/".join(parts))
        array = np.asarray(item, np.float32)
        if match:
            module = match.group(3).rsplit("/", 1)[0].replace("/", ".")
            kind = {"kernel": "weight", "gamma": "weight", "beta": "bias"}.get(leaf, leaf)
            if leaf == "kernel":
                array = array.T
            tensors[f"model.{match.group(1)}.{match.group(2)}.{module}.{kind}"] = array
        elif "final_logits_bias" in parts:
            tensors["final_logits_bias"] = array.reshape(1, -1)
        elif "shared" in parts[-2] and leaf == "weight":
            tensors["model.shared.weight"] = array

    with h5py.File(path, "r") as file:
        file.visititems(visit)
    return tensors


def _hf_options(config):
    """Hugging Face's MarianConfig in Marian's option names (what `marian.check_supported` reads)."""
    return {
        "type": "transformer",
        "enc-depth": config["encoder_layers"], "dec-depth": config["decoder_layers"],
        "dim-emb": config["d_model"],
        "transformer-heads": config["encoder_attention_heads"],
        "transformer-decoder-heads": config.get("decoder_attention_heads",
                                                config["encoder_attention_heads"]),
        "transformer-dim-ffn": config["encoder_ffn_dim"],
        "transformer-decoder-dim-ffn": config.get("decoder_ffn_dim", config["encoder_ffn_dim"]),
        # Hugging Face's "gelu" is the exact one; Marian's is x * sigmoid(1.702 x)
        "transformer-ffn-activation": {"gelu": "gelu_exact", "silu": "swish"}.get(
            config.get("activation_function", "swish"), config.get("activation_function")),
        "transformer-preprocess": "n" if config.get("normalize_before") else "",
        "transformer-postprocess": "da" if config.get("normalize_before") else "dan",
        "transformer-postprocess-emb": "dn" if config.get("normalize_embedding") else "d",
        "transformer-decoder-autoreg": "self-attention",
        "transformer-dropout": config.get("dropout", 0.1),
        "transformer-dropout-attention": config.get("attention_dropout", 0.0),
        "transformer-dropout-ffn": config.get("activation_dropout", 0.0),
        "max-length": config.get("max_position_embeddings", 512),
        "hf-scale-embedding": bool(config.get("scale_embedding", True)),
        "hf-static-position-embeddings": bool(config.get("static_position_embeddings", True)),
    }


_HF_MODULES = {  # Hugging Face module -> Marian's name after "{scope}_l{i}_"
    "self_attn.q_proj": "self_Wq", "self_attn.k_proj": "self_Wk", "self_attn.v_proj": "self_Wv",
    "self_attn.out_proj": "self_Wo", "self_attn_layer_norm": "self_Wo_ln",
    "encoder_attn.q_proj": "context_Wq", "encoder_attn.k_proj": "context_Wk",
    "encoder_attn.v_proj": "context_Wv", "encoder_attn.out_proj": "context_Wo",
    "encoder_attn_layer_norm": "context_Wo_ln",
    "fc1": "ffn_W1", "fc2": "ffn_W2", "final_layer_norm": "ffn_ffn_ln",
}


def _hf_to_marian(weights, config, source_vocabulary, target_vocabulary):
    """Hugging Face's tensors under Marian's names, `<pad>` rows dropped."""
    tensors = {}
    for name, value in weights.items():
        match = re.match(r"model\.(encoder|decoder)\.layers\.(\d+)\.(.+)\.(weight|bias)$", name)
        if not match:
            continue
        scope, index, module, kind = match.groups()
        if module not in _HF_MODULES:
            raise UnsupportedCheckpoint(f"unknown tensor {name}")
        marian = f"{scope}_l{int(index) + 1}_{_HF_MODULES[module]}"
        if marian.endswith("_ln"):
            tensors[f"{marian}_{'scale' if kind == 'weight' else 'bias'}"] = value.reshape(-1)
        elif kind == "weight":
            tensors[marian] = np.ascontiguousarray(value.T)  # torch's (out, in) -> (in, out)
        else:
            tensors[marian.replace("_W", "_b")] = value.reshape(-1)

    def rows(vocabulary, matrix):
        keep = [i for i, piece in enumerate(vocabulary) if piece != HF_PAD]
        if matrix.shape[0] != len(vocabulary):
            raise ValueError(f"an embedding of {matrix.shape[0]} rows for a vocabulary of "
                             f"{len(vocabulary)} pieces")
        return matrix[keep]

    shared = weights.get("model.shared.weight")
    encoder = weights.get("model.encoder.embed_tokens.weight", shared)
    decoder = weights.get("model.decoder.embed_tokens.weight", shared)
    if encoder is None or decoder is None:
        raise ValueError("no embedding matrix (model.shared.weight) among the weights")
    if source_vocabulary is target_vocabulary and np.array_equal(encoder, decoder):
        tensors["Wemb"] = rows(source_vocabulary, decoder)
    else:
        tensors["encoder_Wemb"] = rows(source_vocabulary, encoder)
        tensors["decoder_Wemb"] = rows(target_vocabulary, decoder)
    head = weights.get("lm_head.weight")
    if head is not None and not np.array_equal(head, decoder):
        tensors["decoder_ff_logit_out_W"] = np.ascontiguousarray(rows(target_vocabulary, head).T)
    bias = weights.get("final_logits_bias")
    if bias is not None:
        tensors["decoder_ff_logit_out_b"] = rows(target_vocabulary, bias.reshape(-1, 1))[:, 0]
    if not config.get("static_position_embeddings", True):
        for scope in ("encoder", "decoder"):
            position = weights.get(f"model.{scope}.embed_positions.weight")
            if position is not None:
                tensors[f"{scope}_Wpos"] = position
    pad_rows = sum(piece == HF_PAD for piece in target_vocabulary)
    return tensors, pad_rows
