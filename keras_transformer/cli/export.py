"""`export`: a new version of the run's SavedModels and TFLite files, or a CTranslate2 directory."""

import sys
from pathlib import Path

from keras_transformer.export.artifacts import DEFAULT_TFLITE, TFLITE_VARIANTS
from keras_transformer.export.ctranslate2 import QUANTIZATIONS
from keras_transformer.generation import defaults


def add_parser(commands):
    command = commands.add_parser(
        "export", help="write a SavedModel version and TFLite files for serving",
        description="Writes OUT/N/ (N = the next version): a SavedModel translating strings "
                    "(serving_default, beam_search) and ids (translate_ids), the ids signature "
                    "alone in OUT/N/translate_ids/ (core TensorFlow ops only), and TFLite models "
                    "in OUT/N/tflite/. Prints each file's size and the ops it needs beyond core "
                    "TensorFlow / TFLite builtins. --format ctranslate2 writes a CTranslate2 "
                    "model directory instead.")
    command.add_argument("run_dir", help="a directory written by `train`")
    command.add_argument("--out", default=None,
                         help="the model's base folder (default: saved_models/RUN_DIR_NAME, "
                              "saved_models/RUN_DIR_NAME_ctranslate2 for --format ctranslate2)")
    command.add_argument("--version", type=int, default=None,
                         help="version number to write (default: the next one); an existing "
                              "version is an error")
    command.add_argument("--jit-compile", action="store_true",
                         help="XLA-compile decoding in the SavedModel (sources padded to "
                              "max_length: one compilation per batch size)")
    command.add_argument("--beam-size", type=int, default=defaults.BEAM_SIZE,
                         help=f"beams of the beam_search signature (default: {defaults.BEAM_SIZE})")
    command.add_argument("--alpha", type=float, default=None,
                         help="GNMT length penalty exponent of the beam_search signature (default: "
                              "the run's, chosen by train on validation sentences, else "
                              f"{defaults.ALPHA})")
    command.add_argument("--tflite", nargs="+", default=None, metavar="VARIANT",
                         choices=tuple(TFLITE_VARIANTS),
                         help=f"TFLite files to write (default: {', '.join(DEFAULT_TFLITE)}; the beam "
                              "search files translate_beam{,_int8}, beam_ids_{float32,int8} "
                              "when named)")
    command.add_argument("--no-tflite", action="store_true", help="write no TFLite file")
    command.add_argument("--format", choices=("saved_model", "ctranslate2"), default="saved_model",
                         help="saved_model (default: the SavedModels and TFLite files), or "
                              "ctranslate2: a CTranslate2 model directory with the vocabularies "
                              "and SentencePiece models")
    command.add_argument("--quantization", default="float32", choices=QUANTIZATIONS,
                         help="--format ctranslate2: the weights' type (default float32)")
    return command


def run(args):
    from keras_transformer.export.artifacts import ExportError

    name = Path(args.run_dir).resolve().name
    if args.format == "ctranslate2":
        from keras_transformer.export.ctranslate2 import export_run_ctranslate2

        out = args.out or Path("saved_models") / f"{name}_ctranslate2"
        try:
            version_dir = export_run_ctranslate2(
                args.run_dir, out, version=args.version, quantization=args.quantization,
                alpha=args.alpha, beam_size=args.beam_size)
        except (ExportError, FileNotFoundError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        files = sorted(version_dir.iterdir())
        size = sum(f.stat().st_size for f in files)
        print(f"wrote {version_dir} (CTranslate2, {args.quantization} weights, "
              f"{size / 2 ** 20:.2f} MB): {', '.join(f.name for f in files)}")
        return 0
    from keras_transformer.export.writer import export_run

    out = args.out or Path("saved_models") / name
    tflite = () if args.no_tflite else tuple(args.tflite or DEFAULT_TFLITE)
    try:
        result = export_run(args.run_dir, out, version=args.version, jit_compile=args.jit_compile,
                            beam_size=args.beam_size, alpha=args.alpha, tflite=tflite)
    except (ExportError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {result.version_dir} (version {result.version})")
    print(result.describe())
    return 0
