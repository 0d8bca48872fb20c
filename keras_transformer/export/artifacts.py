"""What an export writes, as values: the TFLite variants it can make, the artifacts with their sizes
and the ops they need. No TensorFlow: the command line reads the variants from here."""

import dataclasses
from pathlib import Path

# name -> (function converted, weight quantization). "strings"/"ids": greedy decoding;
# "beam_strings"/"beam_ids": beam search of the export's --beam-size and --alpha, fixed in the file
TFLITE_VARIANTS = {
    "translate": ("strings", None),
    "translate_float16": ("strings", "float16"),
    "translate_int8": ("strings", "int8"),
    "ids_float32": ("ids", None),
    "ids_float16": ("ids", "float16"),
    "ids_int8": ("ids", "int8"),
    "translate_beam": ("beam_strings", None),
    "translate_beam_int8": ("beam_strings", "int8"),
    "beam_ids_float32": ("beam_ids", None),
    "beam_ids_int8": ("beam_ids", "int8"),
}

# what an export writes unless told otherwise: the greedy files. The beam files are asked for by
# name (`export --tflite translate_beam beam_ids_int8 ...`): each conversion costs as much as a
# greedy one (minutes and ~20 GB at the base shape)
DEFAULT_TFLITE = ("translate", "translate_float16", "translate_int8", "ids_float32",
                  "ids_float16", "ids_int8")


def takes_strings(variant) -> bool:
    """Whether a TFLite variant's input is sentences (with tensorflow-text's custom ops) rather
    than source ids (TFLite builtins only)."""
    return TFLITE_VARIANTS[variant][0].endswith("strings")


class ExportError(ValueError):
    """An export that cannot be written as asked (an existing version, a bad option)."""


@dataclasses.dataclass
class Artifact:
    """One exported SavedModel or .tflite file.

    `extra_ops`: what it needs beyond the core runtime. For a SavedModel, the op types of its
    graph that TensorFlow itself does not define (tensorflow-text's); for a .tflite file, its
    custom ops (not TFLite builtins; Flex ops would be named Flex*).
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
