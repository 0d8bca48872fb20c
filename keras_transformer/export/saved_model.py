"""SavedModels: saving the serving module with its tokenizers as assets, and what op types a
saved graph needs beyond core TensorFlow."""

import tempfile
from pathlib import Path

import tensorflow as tf

SOURCE_TOKENIZER_ASSET = "source.spm"
TARGET_TOKENIZER_ASSET = "target.spm"


def save(module, directory, signatures, text_path):
    """tf.saved_model.save with both SentencePiece models as assets (`assets/`, and on the loaded
    object as `.source_tokenizer.asset_path` / `.target_tokenizer.asset_path`): an app that
    tokenizes itself (the ids signature) uses them with the `sentencepiece` library. An imported
    model's vocabularies (its ids are not SentencePiece's) travel beside them as
    `source.vocab.json` / `target.vocab.json` (`.source_vocabulary` / `.target_vocabulary`)."""
    with tempfile.TemporaryDirectory() as folder:
        for name, tokenizer, attribute in (
                (SOURCE_TOKENIZER_ASSET, text_path.source_tokenizer, "source"),
                (TARGET_TOKENIZER_ASSET, text_path.target_tokenizer, "target")):
            vocabulary = Path(folder) / f"{attribute}.vocab.json"
            tokenizer.save(Path(folder) / name, vocabulary)
            setattr(module, f"{attribute}_tokenizer", tf.saved_model.Asset(str(Path(folder) / name)))
            if vocabulary.exists():
                setattr(module, f"{attribute}_vocabulary", tf.saved_model.Asset(str(vocabulary)))
        tf.saved_model.save(module, str(directory), signatures=signatures)


def saved_model_size(directory):
    """Bytes of a SavedModel's own files (not of folders nested in it)."""
    directory = Path(directory)
    own = [directory / "saved_model.pb", directory / "fingerprint.pb"]
    own += [path for sub in ("variables", "assets") for path in (directory / sub).glob("*")]
    return sum(path.stat().st_size for path in own if path.is_file())


def op_types(directory) -> dict:
    """Per signature, every op type its graph runs (through nested functions and loops)."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((Path(directory) / "saved_model.pb").read_bytes())
    graph = saved.meta_graphs[0].graph_def
    functions = {function.signature.name: function for function in graph.library.function}
    nodes = {node.name: node for node in graph.node}

    def called(attr_values):
        for value in attr_values:
            if value.HasField("func"):
                yield value.func.name
            if value.HasField("list"):
                yield from (func.name for func in value.list.func)

    result = {}
    for key, signature in saved.meta_graphs[0].signature_def.items():
        if key.startswith("__"):
            continue
        todo = [name for output in signature.outputs.values()
                if (node := nodes.get(output.name.split(":")[0])) is not None
                for name in called(node.attr.values())]
        seen, types = set(), set()
        while todo:
            name = todo.pop()
            if name in seen or name not in functions:
                continue
            seen.add(name)
            for node in functions[name].node_def:
                types.add(node.op)
                todo.extend(called(node.attr.values()))
        result[key] = types
    return result




def is_core_op(op_type) -> bool:
    """Whether TensorFlow itself defines the op type: `tf.raw_ops` lists its ops but for the XLA
    ones (XlaDynamicUpdateSlice, ... which a graph decoded under XLA holds), registered by every
    TensorFlow build too. tensorflow-text's ops are in neither."""
    return hasattr(tf.raw_ops, op_type) or op_type.startswith("Xla")


def extra_ops(directory) -> dict:
    """Per signature of a SavedModel, the op types it needs beyond core TensorFlow (sorted)."""
    return {key: tuple(sorted(op for op in ops if not is_core_op(op)))
            for key, ops in op_types(directory).items()}
