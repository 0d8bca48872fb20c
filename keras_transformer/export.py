"""Export: a versioned SavedModel for serving and TFLite models for mobile, string in, string out.

    OUT/                          TensorFlow Serving's --model_base_path
      1/                          version 1: SavedModel (TensorFlow + tensorflow-text ops)
        saved_model.pb
        assets/                   source.spm, target.spm (SentencePiece models)
        translate_ids/            SavedModel of the ids signature alone: core TensorFlow ops
        tflite/
          translate.tflite            strings -> strings (tensorflow-text custom ops)
          translate_float16.tflite    the same, float16 weights
          translate_int8.tflite       the same, dynamic-range int8 weights
          ids_float32.tflite          ids -> ids, TFLite builtins only
          ids_float16.tflite
          ids_int8.tflite
        export.json               max_length, beam settings, sizes, the ops each file needs
      2/                          the next export; a version is never overwritten

A version is written to a hidden folder under OUT and renamed into place when complete, so a
server polling OUT never loads half an export (TensorFlow Serving skips non-numeric folders,
and the extra files inside a version).

SavedModel signatures (greedy and beam search decode with the key/value cache):
    serving_default   sentences [B] string -> translations [B] string
    beam_search       sentences [B] string -> translations [B] string (the best hypothesis),
                      hypotheses [B, K] string and scores [B, K] float32, best first
                      (log-probability / GNMT length penalty)
    translate_ids     source_ids [B, S] int32 ([START] ... [END], 0-padded)
                      -> output_ids [B, max_length] int32 (ends with [END], then 0s)
A SavedModel is loaded whole, so the tensorflow-text ops of the string signatures are needed
even to call `translate_ids` (TensorFlow Serving links them; a plain TensorFlow process must
`import tensorflow_text`). `translate_ids/` holds that signature alone (also as
serving_default) for a runtime without tensorflow-text.

Strings go through the model's `TextPath` (normalize, tokenize, frame; detokenize), the same as
in training and in `Translator`. Every signature and .tflite file gives a defined answer, never an
error, for:
    - "" or whitespace only, or only characters normalization drops (no piece between [START]
      and [END]): "" (output ids all 0);
    - a sentence longer than `max_length` tokens: truncated to its first max_length - 2
      pieces between [START] and [END], as in training; outputs stop after `max_length` tokens;
    - characters the vocabulary lacks: each is an [UNK] piece;
    - invalid UTF-8: each invalid byte reads as U+FFFD, an [UNK] piece (in the SavedModel and
      in TFLite alike: SentencePiece's normalizer does it, no repair op is needed);
    - ids outside the vocabulary (translate_ids): read as [UNK]; columns beyond
      max_length are dropped;
    - an empty batch: an empty batch.

The decoders are frozen (variables folded into constants by `convert_variables_to_constants_v2`)
before anything is saved or converted: TFLite cannot run a while loop whose body reads Keras
variables, and a frozen `translate_ids` lets the stock `tf.lite.TFLiteConverter.from_saved_model(
path, signature_keys=["translate_ids"])` make a working model. The SavedModel thus holds its
weights as graph constants, once for greedy and once for beam search (about twice the float32
weights; fine below the 2 GB protobuf limit, i.e. up to ~200M parameters).

TensorFlow-only: imported where it is used. Imports neither training nor the CLI.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from keras_transformer import decoding
from keras_transformer.model import TransformerParts
from keras_transformer.run_dir import RunDir
from pipelines.tokenizers import END_ID, START_ID, UNK_ID

SOURCE_TOKENIZER_ASSET = "source.spm"
TARGET_TOKENIZER_ASSET = "target.spm"
IDS_SAVED_MODEL = "translate_ids"
TFLITE_FOLDER = "tflite"
MANIFEST = "export.json"

# name -> (function converted, weight quantization)
TFLITE_VARIANTS = {
    "translate": ("strings", None),
    "translate_float16": ("strings", "float16"),
    "translate_int8": ("strings", "int8"),
    "ids_float32": ("ids", None),
    "ids_float16": ("ids", "float16"),
    "ids_int8": ("ids", "int8"),
}


class ExportError(ValueError):
    """An export that cannot be written as asked (an existing version, a bad option)."""


@dataclasses.dataclass
class Artifact:
    """One exported SavedModel or .tflite file.

    `extra_ops`: what it needs beyond the core runtime. For a SavedModel, the op types of its
    graph that a plain `import tensorflow` process does not register (tensorflow-text's); for
    a .tflite file, its custom ops (not TFLite builtins; Flex ops would be named Flex*).
    """

    path: Path
    kind: str  # "saved_model" or "tflite"
    size: int
    extra_ops: tuple = ()

    def describe(self, root=None) -> str:
        name = self.path.relative_to(root) if root else self.path
        if self.extra_ops:
            needs = f"custom ops {', '.join(self.extra_ops)}"
        else:
            needs = ("core TensorFlow ops only" if self.kind == "saved_model"
                     else "TFLite builtin ops only")
        return f"{name}: {self.kind}, {self.size / 2 ** 20:.2f} MB, {needs}"


@dataclasses.dataclass
class ExportResult:
    version_dir: Path
    artifacts: list

    @property
    def version(self) -> int:
        return int(self.version_dir.name)

    def artifact(self, relative_path=".") -> Artifact:
        """The artifact at `relative_path` in the version folder ("." is the SavedModel,
        "translate_ids", "tflite/translate.tflite", ...)."""
        for artifact in self.artifacts:
            if artifact.path.relative_to(self.version_dir) == Path(relative_path):
                return artifact
        raise KeyError(relative_path)

    def describe(self) -> str:
        return "\n".join(a.describe(self.version_dir.parent) for a in self.artifacts)


# ----------------------------------------------------------------------------------------
# The graph: ids in, ids out (core TensorFlow), and the string functions around it.

def _clean_source(source_ids, vocab_size, max_length):
    """(B, S) -> (B, min(S, max_length)) int32; ids outside the vocabulary read as [UNK]."""
    source_ids = tf.cast(source_ids, tf.int32)[:, :max_length]
    outside = tf.logical_or(source_ids < 0, source_ids >= vocab_size)
    return tf.where(outside, UNK_ID, source_ids)


def _freeze(function, spec):
    """A tf.function over ids, traced once and frozen: its variables become constants."""
    traced = tf.function(function, input_signature=[spec], autograph=False)
    # lower_control_flow=False keeps the functional While (the default lowers it to
    # Enter/Exit/Switch/Merge, which XLA cannot compile)
    return convert_variables_to_constants_v2(traced.get_concrete_function(),
                                             lower_control_flow=False)


def _shaped(tensor, shape):
    tensor.set_shape(shape)  # a frozen function's outputs lose their static shapes
    return tensor


STRINGS_SPEC = tf.TensorSpec([None], tf.string, name="sentences")
IDS_SPEC = tf.TensorSpec([None, None], tf.int32, name="source_ids")


class TranslationModule(tf.Module):
    """The serving module: frozen greedy and beam decoders over ids, and the model's `TextPath`
    (normalize, tokenize, frame; detokenize) around them.

    Args:
        model: a trained `build_transformer` model.
        text_path: its `pipelines.text_path.TextPath`; its max_length bounds the source tokens
            kept (with [START] and [END]) and the output tokens made.
        beam_size, alpha: of the `beam_search` signature (GNMT length penalty exponent).
        jit_compile: compile decoding with XLA. Sources are then padded to `max_length`, so
            one compilation serves every sentence length (XLA compiles once per batch size).
    """

    def __init__(self, model, text_path, beam_size=4, alpha=0.6, jit_compile=False):
        super().__init__(name="translation")
        if beam_size < 1:
            raise ExportError(f"beam_size must be positive, got {beam_size}")
        self.text_path = text_path
        self.max_length, self.beam_size = text_path.max_length, int(beam_size)
        self.alpha, self.jit_compile = float(alpha), bool(jit_compile)
        parts = TransformerParts(model)
        vocab_size = parts.source_embedding.vocab_size

        def greedy(source_ids):
            source_ids = _clean_source(source_ids, vocab_size, self.max_length)
            output = decoding.greedy_decode(parts, source_ids, self.max_length)
            return text_path.answer_ids(source_ids, output)

        def beam(source_ids):
            source_ids = _clean_source(source_ids, vocab_size, self.max_length)
            tokens, scores, _ = decoding.beam_search(parts, source_ids, self.max_length,
                                                     self.beam_size, self.alpha)
            return (text_path.answer_ids(source_ids, tokens),
                    tf.where(text_path.has_words(source_ids)[:, None], scores, 0.0))

        # Frozen once; every signature and TFLite file runs these graphs.
        self._frozen_greedy = _freeze(greedy, IDS_SPEC)
        self._frozen_beam = _freeze(beam, IDS_SPEC)
        if self.jit_compile:  # fed (B, max_length) ids: see _serving_greedy
            self._xla_greedy = tf.function(self._greedy, jit_compile=True, autograph=False)
            self._xla_beam = tf.function(self._beam, jit_compile=True, autograph=False)

        self.translate = tf.function(self._translate, input_signature=[STRINGS_SPEC],
                                     autograph=False)
        self.beam_search = tf.function(self._beam_search, input_signature=[STRINGS_SPEC],
                                       autograph=False)
        self.translate_ids = tf.function(self._translate_ids, input_signature=[IDS_SPEC],
                                         autograph=False)

    # ids -> ids
    def _greedy(self, source_ids):
        return _shaped(self._frozen_greedy(source_ids)[0], [None, self.max_length])

    def _beam(self, source_ids):
        tokens, scores = self._frozen_beam(source_ids)
        return (_shaped(tokens, [None, self.beam_size, self.max_length]),
                _shaped(scores, [None, self.beam_size]))

    def _pad(self, source_ids):
        """(B, S) -> (B, max_length): one width, one XLA compilation."""
        source_ids = source_ids[:, :self.max_length]
        return tf.pad(source_ids, [[0, 0], [0, self.max_length - tf.shape(source_ids)[1]]])

    # Padding happens outside the compiled function: XLA compiles once per input shape, so
    # its input must be (B, max_length) whatever the sentence lengths.
    def _serving_greedy(self, source_ids):
        if self.jit_compile:
            return self._xla_greedy(self._pad(source_ids))
        return self._greedy(source_ids)

    def _serving_beam(self, source_ids):
        if self.jit_compile:
            return self._xla_beam(self._pad(source_ids))
        return self._beam(source_ids)

    # strings -> ids -> strings, through the model's one text path
    def _translate(self, sentences):
        output = self._serving_greedy(self.text_path.source_ids(sentences))
        return {"translations": self.text_path.translations(output)}

    def _beam_search(self, sentences):
        tokens, scores = self._serving_beam(self.text_path.source_ids(sentences))
        batch = tf.shape(tokens)[0]
        flat = tf.reshape(tokens, [batch * self.beam_size, self.max_length])
        hypotheses = tf.reshape(self.text_path.translations(flat),
                                [batch, self.beam_size])
        return {"translations": hypotheses[:, 0], "hypotheses": hypotheses, "scores": scores}

    def _translate_ids(self, source_ids):
        return {"output_ids": self._serving_greedy(source_ids)}

    def signatures(self):
        return {"serving_default": self.translate.get_concrete_function(),
                "beam_search": self.beam_search.get_concrete_function(),
                "translate_ids": self.translate_ids.get_concrete_function()}

    def ids_module(self):
        """A module with `translate_ids` alone: core TensorFlow ops, no tokenizers."""
        module = tf.Module(name="translate_ids")
        module.translate_ids = tf.function(self._translate_ids, input_signature=[IDS_SPEC],
                                           autograph=False)
        return module

    def tflite_function(self, kind):
        """The function TFLite converts: "strings" or "ids"; never XLA."""
        if kind == "strings":
            return tf.function(
                lambda sentences: {"translations": self.text_path.translations(
                    self._greedy(self.text_path.source_ids(sentences)))},
                input_signature=[STRINGS_SPEC], autograph=False)
        return tf.function(lambda source_ids: {"output_ids": self._greedy(source_ids)},
                           input_signature=[IDS_SPEC], autograph=False)


# ----------------------------------------------------------------------------------------
# Inspecting what an artifact needs.

def _saved_model_op_types(directory) -> dict:
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


_UNREGISTERED_SCRIPT = """
import sys
import tensorflow
from tensorflow.python.framework import op_def_registry
print(" ".join(op for op in sys.stdin.read().split() if op_def_registry.get(op) is None))
"""


_PLAIN_TENSORFLOW_HAS = {}  # op type -> registered by a bare `import tensorflow`


def _not_in_plain_tensorflow(op_types) -> set:
    """The op types a process that imports only `tensorflow` does not register.

    Asked of a fresh interpreter (this one has imported tensorflow-text), once per op type
    per process. Falls back to "not in tf.raw_ops" (which also counts TensorFlow's own XLA
    ops as extra) if that fails.
    """
    unknown = sorted(set(op_types) - set(_PLAIN_TENSORFLOW_HAS))
    if unknown:
        try:
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            env["TF_CPP_MIN_LOG_LEVEL"] = "3"
            done = subprocess.run([sys.executable, "-c", _UNREGISTERED_SCRIPT],
                                  input=" ".join(unknown), capture_output=True, text=True,
                                  env=env, timeout=300, check=True)
            missing = set(done.stdout.split())
        except (OSError, subprocess.SubprocessError):
            missing = {op for op in unknown if not hasattr(tf.raw_ops, op)}
        _PLAIN_TENSORFLOW_HAS.update((op, op not in missing) for op in unknown)
    return {op for op in op_types if not _PLAIN_TENSORFLOW_HAS[op]}


def saved_model_extra_ops(directory) -> dict:
    """Per signature of a SavedModel, the ops it needs beyond core TensorFlow (sorted)."""
    types = _saved_model_op_types(directory)
    extra = _not_in_plain_tensorflow(set().union(*types.values()))
    return {key: tuple(sorted(ops & extra)) for key, ops in types.items()}


def tflite_ops(model_content) -> dict:
    """The operators a .tflite flatbuffer uses, read from its op codes:
    {"builtin": names, "custom": names} (Flex ops are custom ops named Flex*)."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(model_content), 0))
    names = {value: name for name, value in vars(schema.BuiltinOperator).items()
             if not name.startswith("_")}
    builtin, custom = set(), set()
    for code in model.operatorCodes:
        number = max(code.builtinCode, code.deprecatedBuiltinCode)
        if number == schema.BuiltinOperator.CUSTOM:
            name = code.customCode
            custom.add(name.decode() if isinstance(name, bytes) else name)
        else:
            builtin.add(names.get(number, str(number)))
    return {"builtin": tuple(sorted(builtin)), "custom": tuple(sorted(custom))}


def tflite_interpreter(model_path=None, model_content=None):
    """A LiteRT interpreter with tensorflow-text's custom op kernels registered."""
    import tensorflow_text
    from ai_edge_litert.interpreter import InterpreterWithCustomOps

    return InterpreterWithCustomOps(
        custom_op_registerers=tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS,
        model_path=None if model_path is None else str(model_path),
        model_content=model_content)


# ----------------------------------------------------------------------------------------
# Writing.

def convert_tflite(module, variant) -> bytes:
    """One of TFLITE_VARIANTS of a TranslationModule, as a .tflite flatbuffer."""
    if variant not in TFLITE_VARIANTS:
        raise ExportError(f"unknown TFLite variant {variant!r}; "
                          f"choose from {', '.join(TFLITE_VARIANTS)}")
    kind, quantization = TFLITE_VARIANTS[variant]
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.tflite_function(kind).get_concrete_function()], module)
    if kind == "strings":
        converter.allow_custom_ops = True  # tensorflow-text ops become TFLite custom ops
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range: int8 weights
    return converter.convert()


def _check_runs(content, variant):
    """Runs one batch through the converted model: a custom op without a kernel in
    tensorflow-text's registrar (e.g. StringLower of a lower-casing tokenizer) fails here,
    at export, rather than on the phone."""
    try:
        runner = tflite_interpreter(model_content=content).get_signature_runner()
        if TFLITE_VARIANTS[variant][0] == "strings":
            runner(sentences=tf.constant(["a b", ""]).numpy())
        else:
            runner(source_ids=tf.constant([[START_ID, UNK_ID, END_ID]]).numpy())
    except ImportError:
        return  # no LiteRT here: nothing to check with
    except Exception as error:  # noqa: BLE001 - any failure means an unusable file
        raise ExportError(f"{variant}.tflite converts but does not run with LiteRT and "
                          f"tensorflow-text's custom ops: {error}") from error


def _write_tflite(module, folder, variants, check=True):
    folder = Path(folder)
    artifacts = []
    for variant in variants:
        folder.mkdir(parents=True, exist_ok=True)
        content = convert_tflite(module, variant)
        if check:
            _check_runs(content, variant)
        path = folder / f"{variant}.tflite"
        path.write_bytes(content)
        artifacts.append(Artifact(path, "tflite", len(content), tflite_ops(content)["custom"]))
    return artifacts


def _save(module, directory, signatures, text_path):
    """tf.saved_model.save with both SentencePiece models as assets (`assets/`, and on the loaded
    object as `.source_tokenizer.asset_path` / `.target_tokenizer.asset_path`): an app that
    tokenizes itself (the ids signature) uses them with the `sentencepiece` library."""
    with tempfile.TemporaryDirectory() as folder:
        for name, tokenizer, attribute in (
                (SOURCE_TOKENIZER_ASSET, text_path.source_tokenizer, "source_tokenizer"),
                (TARGET_TOKENIZER_ASSET, text_path.target_tokenizer, "target_tokenizer")):
            tokenizer.save(Path(folder) / name)
            setattr(module, attribute, tf.saved_model.Asset(str(Path(folder) / name)))
        tf.saved_model.save(module, str(directory), signatures=signatures)


def _saved_model_size(directory):
    """Bytes of a SavedModel's own files (not of folders nested in it)."""
    directory = Path(directory)
    own = [directory / "saved_model.pb", directory / "fingerprint.pb"]
    own += [path for sub in ("variables", "assets") for path in (directory / sub).glob("*")]
    return sum(path.stat().st_size for path in own if path.is_file())


def next_version(base) -> int:
    """1 + the highest numbered version under `base` (1 when there is none)."""
    base = Path(base)
    if not base.is_dir():
        return 1
    return max((int(child.name) for child in base.iterdir()
                if child.is_dir() and child.name.isdigit()), default=0) + 1


def _check_version(base, version):
    if version is None:
        return
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ExportError(f"version must be a positive integer, got {version!r}")
    if (Path(base) / str(version)).exists():
        raise ExportError(f"{Path(base) / str(version)} exists and versions are never "
                          "overwritten; leave the version out to write the next one "
                          f"({next_version(base)})")


def _check_options(base, version, tflite):
    _check_version(base, version)
    unknown = [variant for variant in tflite if variant not in TFLITE_VARIANTS]
    if unknown:
        raise ExportError(f"unknown TFLite variant(s) {', '.join(map(str, unknown))}; "
                          f"choose from {', '.join(TFLITE_VARIANTS)}")


def _publish(staging, base, version):
    """Renames the finished staging folder to base/version (the next free one if None).

    The rename is atomic and fails if the name is taken, so concurrent exports do not
    overwrite each other: an explicit version then errs, an automatic one takes the next.
    """
    while True:
        number = version if version is not None else next_version(base)
        target = base / str(number)
        if target.exists():
            _check_version(base, version)  # raises for an explicit version
            continue
        try:
            os.rename(staging, target)
            return target
        except OSError:
            if not target.exists():
                raise
            _check_version(base, version)


def export(model, text_path, directory, *, version=None, jit_compile=False, beam_size=4, alpha=0.6, tflite=tuple(TFLITE_VARIANTS),
           metadata=None) -> ExportResult:
    """Writes a new version of the SavedModel under `directory`, with the core-TensorFlow
    `translate_ids/` SavedModel and the TFLite files `tflite` (names of TFLITE_VARIANTS; ()
    for none) inside it. See this module's docstring for the layout and signatures.

    `text_path` is the model's `TextPath` (tokenizers and max_length). Sources longer than
    max_length tokens are truncated to their first max_length - 2 tokens (plus [START] and
    [END]); outputs stop after max_length tokens.

    Args:
        version: the version number; default the next one. An existing version is an
            ExportError: versions are never overwritten.
        jit_compile: XLA-compile decoding in the SavedModel (not in TFLite).
        metadata: more entries for export.json.
    Returns:
        ExportResult: the version folder and every artifact with its size and extra ops.
    """
    base = Path(directory)
    _check_options(base, version, tflite)
    module = TranslationModule(model, text_path, beam_size, alpha, jit_compile)
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=base))  # non-numeric: unserved
    try:
        _save(module, staging, module.signatures(), text_path)
        ids_module = module.ids_module()
        ids_function = ids_module.translate_ids.get_concrete_function()
        _save(ids_module, staging / IDS_SAVED_MODEL,
              {"serving_default": ids_function, "translate_ids": ids_function},
              text_path)
        signature_ops = saved_model_extra_ops(staging)
        artifacts = [Artifact(path, "saved_model", _saved_model_size(path),
                              tuple(sorted(set().union(*ops.values()))))
                     for path, ops in ((staging, signature_ops),
                                       (staging / IDS_SAVED_MODEL,
                                        {"translate_ids": signature_ops["translate_ids"]}))]
        artifacts += _write_tflite(module, staging / TFLITE_FOLDER, tflite)
        manifest = {
            "max_length": module.max_length, "beam_size": module.beam_size,
            "alpha": module.alpha, "jit_compile": module.jit_compile,
            "source_vocab_size": text_path.source_tokenizer.vocab_size,
            "target_vocab_size": text_path.target_tokenizer.vocab_size,
            "signatures": {key: {"extra_ops": list(ops)} for key, ops in signature_ops.items()},
            "artifacts": {str(a.path.relative_to(staging)) or ".":
                          {"kind": a.kind, "bytes": a.size, "extra_ops": list(a.extra_ops)}
                          for a in artifacts},
            **(metadata or {})}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        version_dir = _publish(staging, base, version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(version_dir, [
        dataclasses.replace(a, path=version_dir / a.path.relative_to(staging))
        for a in artifacts])


def export_saved_model(model, text_path, directory, jit_compile=False, **options) -> Path:
    """The SavedModels only (no TFLite), as a new version under `directory`; returns the
    version folder. `options`: version, beam_size, alpha, metadata (see `export`)."""
    return export(model, text_path, directory, jit_compile=jit_compile, tflite=(),
                  **options).version_dir


def export_tflite(model, text_path, directory, variants=tuple(TFLITE_VARIANTS)) -> list:
    """The TFLite files `variants` (TFLITE_VARIANTS names) written to `directory` as
    VARIANT.tflite, unversioned; returns their Artifacts."""
    return _write_tflite(TranslationModule(model, text_path), directory, variants)


def export_run(run_dir, out, **options) -> ExportResult:
    """Exports the best model of a trained run directory as a new version under `out`.

    `options` as for `export`; the text path (tokenizers, max_length) is the run's.
    """
    _check_options(Path(out), options.get("version"),
                   options.get("tflite", tuple(TFLITE_VARIANTS)))  # before the slow part
    model, text_path, _ = RunDir(run_dir).load_trained()
    metadata = {"run_dir": str(Path(run_dir).resolve()), **options.pop("metadata", {})}
    return export(model, text_path, out, metadata=metadata, **options)
