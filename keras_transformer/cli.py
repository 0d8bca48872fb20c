"""`python -m keras_transformer SUBCOMMAND`: argument parsing only, one thin function each."""

import argparse
import dataclasses
import json
import sys

from keras_transformer.config import PRESETS, TransformerConfig


def summary(args):
    from keras_transformer import build_transformer, preset

    config = preset(args.preset, source_vocab_size=args.vocab_size,
                    target_vocab_size=args.vocab_size)
    model = build_transformer(config)
    model.summary()
    print(f"{args.preset}: {model.count_params():,} parameters")
    return 0


def parse_overrides(pairs):
    """["num_layers=3", "dropout=0.2"] -> {"num_layers": 3, "dropout": 0.2}, checked."""
    fields = {field.name: field.type for field in dataclasses.fields(TransformerConfig)}
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in fields:
            raise SystemExit(f"--set {pair!r}: expected KEY=VALUE with KEY one of "
                             f"{', '.join(sorted(fields))}")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value  # a bare string such as pre
    return overrides


def train(args):
    from keras_transformer.run_dir import IncompatibleRunError
    from keras_transformer.trainer import TrainSettings, train as run_training

    settings = TrainSettings(
        data=args.data, preset=args.preset, overrides=parse_overrides(args.set),
        vocab_size=args.vocab_size, shared_vocab=args.shared_vocab,
        batch_tokens=args.batch_tokens, warmup_steps=args.warmup_steps,
        learning_rate_scale=args.learning_rate_scale, label_smoothing=args.label_smoothing,
        seed=args.seed, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
        jit_compile=args.jit_compile, mixed_precision=args.mixed_precision,
        strategy=args.strategy)
    try:
        run_training(settings, args.out, examples=args.examples)
    except (IncompatibleRunError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def search_options(args):
    """The --search choice and its options, as Translator.translate takes them."""
    if args.search == "beam":
        return {"beam_size": args.beam_size, "alpha": args.alpha}
    if args.search == "sample":
        return {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p,
                "seed": args.seed}
    return {}


def read_sentences(args):
    if args.sentences:
        return args.sentences
    lines = open(args.file, encoding="utf-8") if args.file not in (None, "-") else sys.stdin
    return [line.rstrip("\n") for line in lines]


def translate(args):
    from keras_transformer.translator import load_translator

    translator = load_translator(args.run_dir, jit_compile=args.jit_compile)
    sentences = read_sentences(args)
    for translation in translator.translate(sentences, args.search, args.batch_size,
                                            **search_options(args)):
        print(translation)
    return 0


def evaluate(args):
    from keras_transformer.evaluation import score_translations
    from keras_transformer.run_dir import RunDir
    from keras_transformer.translator import load_translator
    from pipelines.readers import load_pairs

    run = RunDir(args.run_dir)
    translator = load_translator(run.path, jit_compile=args.jit_compile)
    data = args.data or str(run.split_file("test"))
    result = load_pairs(data)
    print(f"{data}: {result.summary()}")
    sources = [source for source, _ in result.pairs]
    references = [target for _, target in result.pairs]
    hypotheses = translator.translate(sources, args.search, args.batch_size,
                                      **search_options(args))
    out = args.hypotheses or run.hypotheses
    with open(out, "w", encoding="utf-8") as file:
        file.writelines(hypothesis + "\n" for hypothesis in hypotheses)
    scores = score_translations(hypotheses, references)
    print(f"BLEU {scores['bleu']:.1f}")
    print(f"chrF {scores['chrf']:.1f}")
    print(f"exact match {100 * scores['exact_match']:.1f}% ({scores['sentences']} sentences)")
    print(f"hypotheses: {out}")
    return 0


def attention_layer(value):
    """--layer of `attention`: "all" or a layer index (0 the first, -1 the last)."""
    if value == "all":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a layer number or all, got {value!r}")


def attention(args):
    from keras_transformer.translator import load_translator

    kinds = ("self", "masked", "cross") if args.kind == "all" else (args.kind,)
    layers = None if args.layer == "all" else [args.layer]
    translator = load_translator(args.run_dir)
    count = translator.parts.num_layers
    if layers and not -count <= args.layer < count:
        print(f"error: --layer {args.layer}: the model has {count} layers (0 to {count - 1})",
              file=sys.stderr)
        return 2
    maps = translator.attention(args.sentence)
    print(" ".join(maps.output_tokens))
    if args.out or not args.html:
        from keras_transformer.plots import plot_attention

        out = args.out or "attention.png"
        plot_attention(maps, out, kinds, layers)
        print(f"wrote {out}")
    if args.html:
        from keras_transformer.attention_page import write_attention_page

        write_attention_page(maps, args.html)
        print(f"wrote {args.html}")
    return 0


def positional(args):
    from keras_transformer.plots import plot_positional_encoding

    plot_positional_encoding(args.out, args.length, args.d_model)
    print(f"wrote {args.out}")
    return 0


def export(args):
    from pathlib import Path

    from keras_transformer.export import TFLITE_VARIANTS, ExportError, export_run

    out = args.out or Path("saved_models") / Path(args.run_dir).resolve().name
    tflite = () if args.no_tflite else tuple(args.tflite or TFLITE_VARIANTS)
    try:
        result = export_run(args.run_dir, out, version=args.version,
                            jit_compile=args.jit_compile, beam_size=args.beam_size,
                            alpha=args.alpha, tflite=tflite)
    except (ExportError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {result.version_dir} (version {result.version})")
    print(result.describe())
    return 0


def add_search_arguments(command):
    command.add_argument("--search", choices=("greedy", "beam", "sample"), default="greedy",
                         help="decoding: greedy, beam search, or sampling")
    command.add_argument("--beam-size", type=int, default=4, help="beams (--search beam)")
    command.add_argument("--alpha", type=float, default=0.6,
                         help="GNMT length penalty exponent (--search beam)")
    command.add_argument("--temperature", type=float, default=1.0, help="(--search sample)")
    command.add_argument("--top-k", type=int, default=None, help="(--search sample)")
    command.add_argument("--top-p", type=float, default=None, help="(--search sample)")
    command.add_argument("--seed", type=int, default=0, help="(--search sample)")
    command.add_argument("--batch-size", type=int, default=64,
                         help="sentences decoded together")
    command.add_argument("--jit-compile", action="store_true",
                         help="compile decoding with XLA (compiles once per input shape)")


def build_parser():
    from keras_transformer.trainer import MIXED_PRECISION, STRATEGIES, TrainSettings

    defaults = TrainSettings()
    parser = argparse.ArgumentParser(
        prog="keras-transformer",
        description="The Transformer of 'Attention Is All You Need' in Keras 3.")
    commands = parser.add_subparsers(dest="command", required=True)

    command = commands.add_parser("summary", help="build a preset's model and print its layers")
    command.add_argument("--preset", choices=sorted(PRESETS), default="small",
                         help="model size (default: small)")
    command.add_argument("--vocab-size", type=int, default=8000,
                         help="source and target vocabulary size (default: 8000)")
    command.set_defaults(run=summary)

    command = commands.add_parser(
        "train", help="train a model with model.fit and write a run directory",
        description="Train on the embedded dataset or your own parallel text. Writes "
                    "config.json, vocabularies, best.keras (lowest validation loss), "
                    "history.csv and TensorBoard logs/ to --out. Run the same command "
                    "again after an interruption to resume from the last finished epoch.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    command.add_argument("--data", default=defaults.data,
                         help="'default' (the embedded English->Spanish dataset), a TSV "
                              "of source<TAB>target lines, or SOURCE_FILE,TARGET_FILE "
                              "(line-aligned text files)")
    command.add_argument("--preset", choices=sorted(PRESETS), default=defaults.preset,
                         help="model size")
    command.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override a model setting, e.g. --set num_layers=3 "
                              "--set norm_position=pre (repeatable)")
    command.add_argument("--epochs", type=int, default=defaults.epochs,
                         help="passes over the training split")
    command.add_argument("--steps-per-epoch", type=int, default=None,
                         help="batches per epoch (default: the whole split)")
    command.add_argument("--batch-tokens", type=int, default=defaults.batch_tokens,
                         help="batch size in tokens (sentences are bucketed by length)")
    command.add_argument("--vocab-size", type=int, default=defaults.vocab_size,
                         help="WordPiece vocabulary size per language")
    command.add_argument("--shared-vocab", action="store_true",
                         help="one vocabulary for both languages")
    command.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps,
                         help="linear warmup of the paper's learning-rate schedule")
    command.add_argument("--learning-rate-scale", type=float,
                         default=defaults.learning_rate_scale,
                         help="multiplies the paper's schedule")
    command.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing,
                         help="epsilon of label smoothing")
    command.add_argument("--seed", type=int, default=defaults.seed,
                         help="seed of data generation, splits, shuffling and initialization")
    command.add_argument("--out", default="runs/default", help="the run directory")
    command.add_argument("--jit-compile", action="store_true",
                         help="compile training steps with XLA")
    command.add_argument("--mixed-precision", choices=sorted(MIXED_PRECISION), default=None,
                         help="compute in 16-bit floats (logits and loss stay float32)")
    command.add_argument("--strategy", choices=STRATEGIES, default=defaults.strategy,
                         help="tf.distribute: mirrored = every local GPU (or CPU device); "
                              "multi_worker = the machines in TF_CONFIG (run the same "
                              "command on each; every worker takes its own batches)")
    command.add_argument("--examples", type=int, default=5,
                         help="test translations to print at the end")
    command.set_defaults(run=train)

    command = commands.add_parser(
        "translate", help="translate sentences with a trained run",
        description="Sentences come from the arguments, else --file, else standard input "
                    "(one per line); translations are printed one per line.")
    command.add_argument("run_dir", help="a directory written by `train`")
    command.add_argument("sentences", nargs="*", help="sentences to translate")
    command.add_argument("--file", default=None, help="a file of sentences, or - for stdin")
    add_search_arguments(command)
    command.set_defaults(run=translate)

    command = commands.add_parser(
        "evaluate", help="BLEU, chrF and exact match on the run's test split or a TSV")
    command.add_argument("run_dir", help="a directory written by `train`")
    command.add_argument("--data", default=None,
                         help="a TSV or SOURCE,TARGET files (default: the run's test split)")
    command.add_argument("--hypotheses", default=None,
                         help="where to write the translations (default: "
                              "RUN_DIR/hypotheses.txt)")
    add_search_arguments(command)
    command.set_defaults(run=evaluate)

    command = commands.add_parser(
        "attention", help="plot the attention weights of one translation, head by head",
        description="Translates the sentence greedily with the cached decoding and draws "
                    "the weights it computed: the encoder self-attention (self), the "
                    "decoder's masked self-attention (masked) and the cross-attention "
                    "(cross), one panel per head. --html writes a page to explore every "
                    "layer, head and kind in a browser.")
    command.add_argument("run_dir", help="a directory written by `train`")
    command.add_argument("sentence", help="the sentence to translate")
    command.add_argument("--kind", choices=("self", "masked", "cross", "all"), default="all",
                         help="which attention to draw (default: all three)")
    command.add_argument("--layer", default=-1, type=attention_layer,
                         help="layer to draw: 0 is the first, -1 the last (default), or all")
    command.add_argument("--out", default=None,
                         help="the figure to write, .png/.svg/.pdf (default: attention.png, "
                              "none when only --html is given)")
    command.add_argument("--html", default=None, metavar="PATH",
                         help="also write a self-contained page where you pick layer, head "
                              "and kind and hover a cell to read its weight")
    command.set_defaults(run=attention)

    command = commands.add_parser("positional", help="plot the sinusoidal positional encoding")
    command.add_argument("--out", default="positional_encoding.png", help="the PNG to write")
    command.add_argument("--length", type=int, default=64, help="positions")
    command.add_argument("--d-model", type=int, default=128, help="dimensions")
    command.set_defaults(run=positional)

    command = commands.add_parser(
        "export", help="write a SavedModel version and TFLite files for serving",
        description="Writes OUT/N/ (N = the next version): a SavedModel translating strings "
                    "(serving_default, beam_search) and ids (translate_ids), the ids "
                    "signature alone in OUT/N/translate_ids/ (core TensorFlow ops only), "
                    "and TFLite models in OUT/N/tflite/. Prints each file's size and the "
                    "ops it needs beyond core TensorFlow / TFLite builtins.")
    command.add_argument("run_dir", help="a directory written by `train`")
    command.add_argument("--out", default=None,
                         help="the model's base folder (default: saved_models/RUN_DIR_NAME)")
    command.add_argument("--version", type=int, default=None,
                         help="version number to write (default: the next one); an "
                              "existing version is an error")
    command.add_argument("--jit-compile", action="store_true",
                         help="XLA-compile decoding in the SavedModel (sources padded to "
                              "max_length: one compilation per batch size)")
    command.add_argument("--beam-size", type=int, default=4,
                         help="beams of the beam_search signature")
    command.add_argument("--alpha", type=float, default=0.6,
                         help="GNMT length penalty exponent of the beam_search signature")
    command.add_argument("--tflite", nargs="+", default=None, metavar="VARIANT",
                         help="TFLite files to write (default: all of translate, "
                              "translate_float16, translate_int8, ids_float32, ids_float16, "
                              "ids_int8)")
    command.add_argument("--no-tflite", action="store_true", help="write no TFLite file")
    command.set_defaults(run=export)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
