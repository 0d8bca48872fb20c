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
    from keras_transformer.training.distribution import WorkerLostError
    from keras_transformer.training.job import train as run_training
    from keras_transformer.training.settings import TrainSettings

    # every TrainSettings field is an option of the same name (`overrides` is --set)
    fields = {field.name for field in dataclasses.fields(TrainSettings)} - {"overrides"}
    settings = TrainSettings(overrides=parse_overrides(args.set),
                             **{name: getattr(args, name) for name in fields})
    try:
        run_training(settings, args.out, examples=args.examples)
    except (IncompatibleRunError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except WorkerLostError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    return 0


def search_options(args):
    """The --search choice and its options, as Translator.translate takes them; beam search's
    alpha is the run's (chosen by `train` on validation sentences) unless --alpha is given."""
    from keras_transformer.run_dir import RunDir

    options = {"no_repeat_ngram": args.no_repeat_ngram}
    if args.search == "beam":
        alpha = RunDir(args.run_dir).beam_alpha() if args.alpha is None else args.alpha
        options.update(beam_size=args.beam_size, alpha=alpha)
    if args.search == "sample":
        options.update(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                       seed=args.seed)
    return options


def read_sentences(args):
    """The sentences to translate: one per line of --file or standard input (split on "\n" only,
    so every input line gets exactly one output line); bytes that are not UTF-8 become U+FFFD."""
    if args.sentences:
        return args.sentences
    if args.file not in (None, "-"):
        with open(args.file, "rb") as file:
            data = file.read()
    else:
        data = sys.stdin.buffer.read()
    lines = data.split(b"\n")
    if lines and not lines[-1]:  # the newline that ends the last line starts no new one
        lines.pop()
    return [line.rstrip(b"\r").decode("utf-8", errors="replace") for line in lines]


def open_translator(args):
    """The Translator of --engine over the run (or a CTranslate2 export directory)."""
    from keras_transformer.engines import load_translator

    return load_translator(args.run_dir, jit_compile=args.jit_compile, engine=args.engine,
                           compute_type=args.compute_type)


def translate(args):
    translator = open_translator(args)
    sentences = read_sentences(args)
    if args.n_best:
        if args.search != "beam":
            print("error: --n-best needs --search beam", file=sys.stderr)
            return 2
        options = search_options(args)
        options["beam_size"] = max(options["beam_size"], args.n_best)
        for index, hypotheses in enumerate(translator.translate_nbest(
                sentences, args.n_best, args.batch_size, **options)):
            for score, text in hypotheses:  # SENTENCE<TAB>SCORE<TAB>HYPOTHESIS, best first
                print(f"{index}\t{score:.4f}\t{text}")
        return 0
    for translation in translator.translate(sentences, args.search, args.batch_size,
                                            **search_options(args)):
        print(translation.replace("\n", " "))  # one line out per line in
    return 0


def evaluate(args):
    from keras_transformer.generation.evaluation import score_translations
    from keras_transformer.run_dir import RunDir
    from pipelines.normalization import normalize
    from pipelines.readers import load_pairs

    run = RunDir(args.run_dir)
    translator = open_translator(args)
    data = args.data or str(run.split_file("test"))
    pairs, report = load_pairs(data)
    print(f"{data}: {report.summary()}")
    sources = [source for source, _ in pairs]
    references = [normalize(target) for _, target in pairs]  # as the outputs are
    hypotheses = translator.translate(sources, args.search, args.batch_size,
                                      **search_options(args))
    out = args.hypotheses or run.hypotheses
    with open(out, "w", encoding="utf-8") as file:
        file.writelines(hypothesis + "\n" for hypothesis in hypotheses)
    scores = score_translations(hypotheses, references)
    print(f"BLEU {scores['bleu']:.1f} (sacrebleu, tokenize={scores['bleu_tokenize']})")
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
    from keras_transformer.engines import load_translator

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
        from keras_transformer.viz.plots import plot_attention

        out = args.out or "attention.png"
        plot_attention(maps, out, kinds, layers)
        print(f"wrote {out}")
    if args.html:
        from keras_transformer.viz.attention_page import write_attention_page

        write_attention_page(maps, args.html)
        print(f"wrote {args.html}")
    return 0


def average(args):
    from keras_transformer.generation.evaluation import score_translations
    from keras_transformer.generation.translator import Translator
    from keras_transformer.run_dir import RunDir
    from keras_transformer.training.averaging import average_run
    from keras_transformer.training.job import validation_pairs

    run = RunDir(args.run_dir)
    averaged, files = average_run(run, args.last)
    print(f"averaged {len(files)} checkpoints ({files[0].name} ... {files[-1].name}) into "
          f"{run.averaged_model}")
    best, text_path, _ = run.load_trained(run.best_model)
    sources, references = validation_pairs(run, args.sentences)
    for name, model in (("best", best), ("averaged", averaged)):
        scores = score_translations(Translator(model, text_path).translate(sources), references)
        print(f"validation ({len(sources)} sentences), {name}: BLEU {scores['bleu']:.2f}, "
              f"chrF {scores['chrf']:.2f}")
    return 0


def positional(args):
    from keras_transformer.viz.plots import plot_positional_encoding

    plot_positional_encoding(args.out, args.length, args.d_model)
    print(f"wrote {args.out}")
    return 0


def export(args):
    from pathlib import Path

    from keras_transformer.export.artifacts import ExportError
    from keras_transformer.export.tflite import TFLITE_VARIANTS
    from keras_transformer.export.writer import export_run

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
        size = sum(f.stat().st_size for f in version_dir.iterdir())
        print(f"wrote {version_dir} (CTranslate2, {args.quantization} weights, "
              f"{size / 2 ** 20:.2f} MB): {', '.join(sorted(f.name for f in version_dir.iterdir()))}")
        return 0
    out = args.out or Path("saved_models") / name
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
    from keras_transformer.generation import decoding

    command.add_argument("--search", choices=decoding.SEARCHES, default="greedy",
                         help="decoding: greedy, beam search, or sampling")
    command.add_argument("--beam-size", type=int, default=decoding.BEAM_SIZE,
                         help=f"beams (--search beam; default {decoding.BEAM_SIZE})")
    command.add_argument("--alpha", type=float, default=None,
                         help="GNMT length penalty exponent (--search beam; default: the "
                              "run's, chosen by train on validation sentences, else "
                              f"{decoding.ALPHA})")
    command.add_argument("--no-repeat-ngram", type=int, default=0, metavar="N",
                         help="never repeat an n-gram of the output (0: off)")
    command.add_argument("--temperature", type=float, default=1.0, help="(--search sample)")
    command.add_argument("--top-k", type=int, default=None, help="(--search sample)")
    command.add_argument("--top-p", type=float, default=None, help="(--search sample)")
    command.add_argument("--seed", type=int, default=0, help="(--search sample)")
    command.add_argument("--batch-size", type=int, default=None,
                         help="sentences decoded together (default: 64 hypotheses' worth: 64 "
                              "sentences greedily, 16 with beam 4)")
    command.add_argument("--jit-compile", action="store_true",
                         help="compile decoding with XLA (compiles once per input shape)")
    command.add_argument("--engine", choices=("keras", "ctranslate2"), default="keras",
                         help="keras (default), or ctranslate2: the run's model converted for "
                              "CTranslate2 on first use (RUN_DIR/ctranslate2/); RUN_DIR may "
                              "also be a directory written by export --format ctranslate2")
    command.add_argument("--compute-type", default="default",
                         help="--engine ctranslate2: the engine's compute type, e.g. int8, "
                              "int8_float32, float16 (default: as the weights were saved)")


def build_parser():
    from keras_transformer.generation import decoding
    from keras_transformer.training import recipes
    from keras_transformer.training.beam_alpha import ALPHAS
    from keras_transformer.training.distribution import STRATEGIES
    from keras_transformer.training.precision import PRECISIONS
    from keras_transformer.training.settings import KEEP_BEST, TrainSettings

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

    embedded, real = recipes.EMBEDDED, recipes.REAL_CORPUS

    def from_recipe(name, unit=""):
        """Help text of an option whose default comes from the data's recipe."""
        return (f"default: {embedded[name]}{unit} for the embedded data, {real[name]}{unit} for "
                "a real corpus")

    command = commands.add_parser(
        "train", help="train a model with model.fit and write a run directory",
        description="Train on the embedded dataset or your own parallel text. Writes "
                    "config.json, SentencePiece models, best.keras (the kept model), averaged.keras "
                    "(with --average-last), "
                    "history.csv and TensorBoard logs/ to --out. Run the same command "
                    "again after an interruption to resume from the last finished epoch. "
                    "Options left out take the data's recipe (docs/recipes.md).")
    command.add_argument("--data", default=defaults.data,
                         help="'default' (the embedded English->Spanish dataset), a TSV "
                              "of source<TAB>target lines, or SOURCE_FILE,TARGET_FILE "
                              "(line-aligned text files); any size, read as a stream")
    command.add_argument("--validation-data", default=None, metavar="DATA",
                         help="your own validation set (TSV or SOURCE,TARGET); default: "
                              "held out of --data by a hash of each source sentence")
    command.add_argument("--test-data", default=None, metavar="DATA",
                         help="your own test set (TSV or SOURCE,TARGET); default: held out "
                              "of --data")
    command.add_argument("--max-bad-fraction", type=float, default=defaults.max_bad_fraction,
                         help="malformed lines (not UTF-8, no tab, an empty side) are "
                              f"skipped and reported; stop if more than this fraction "
                              f"(default {defaults.max_bad_fraction})")
    command.add_argument("--vocab-sample", type=int, default=defaults.vocab_sample,
                         help="training pairs (a uniform sample) the vocabularies are learned "
                              f"from (default {defaults.vocab_sample})")
    command.add_argument("--preset", choices=sorted(PRESETS), default=None,
                         help=f"model size ({from_recipe('preset')})")
    command.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override a model setting, e.g. --set num_layers=3 "
                              "--set norm_position=pre (repeatable; the recipe sets "
                              f"{embedded['model']} for the embedded data, {real['model']} "
                              "for a real corpus)")
    command.add_argument("--epochs", type=int, default=None,
                         help=f"epochs at most ({from_recipe('epochs')})")
    command.add_argument("--steps-per-epoch", type=int, default=None,
                         help="training steps between evaluations and checkpoints, 0 for a "
                              "pass over the data (default: a pass for the embedded data, "
                              f"{real['steps_per_epoch']} for a real corpus)")
    command.add_argument("--max-minutes", type=float, default=None,
                         help="a training time budget: stop at the end of the step where it "
                              "runs out, then evaluate and report (counted over resumed "
                              "sessions too; default: none)")
    command.add_argument("--cooldown", type=float, default=None, metavar="FRACTION",
                         help="take the learning rate linearly to 0 over this last fraction "
                              "of the --max-minutes budget, or without one of the --epochs, "
                              f"0 none ({from_recipe('cooldown')})")
    command.add_argument("--keep-best", choices=sorted(KEEP_BEST), default=None,
                         help=f"what decides the kept best.keras ({from_recipe('keep_best')})")
    command.add_argument("--bleu-sentences", type=int, default=None,
                         help="validation sentences translated each epoch for val_bleu and "
                              f"val_chrf, 0 none ({from_recipe('bleu_sentences')})")
    command.add_argument("--early-stopping", type=int, default=None, metavar="EPOCHS",
                         help="stop after this many epochs without a better --keep-best value, "
                              f"0 never ({from_recipe('early_stopping')})")
    command.add_argument("--keep-checkpoints", type=int, default=None,
                         metavar="N", help="keep the weights of the last N epochs in "
                                           f"checkpoints/, for `average` ({from_recipe('keep_checkpoints')})")
    command.add_argument("--average-last", type=int, default=None, metavar="N",
                         help="at the end, average the last N epochs' weights into "
                              "averaged.keras, the run's model from then on (translate, "
                              "evaluate, export), and report both models' test scores "
                              f"({from_recipe('average_last')})")
    command.add_argument("--tune-alpha", action=argparse.BooleanOptionalAction, default=None,
                         help="after training, try beam search alphas "
                              f"{', '.join(map(str, ALPHAS))} on the validation sentences and "
                              "store the best, the default of translate, evaluate and export "
                              f"({from_recipe('tune_alpha')})")
    command.add_argument("--batch-tokens", type=int, default=None,
                         help=f"batch size in tokens, sentences bucketed by length "
                              f"({from_recipe('batch_tokens')})")
    command.add_argument("--vocab-size", type=int, default=None,
                         help=f"SentencePiece vocabulary size per language, or shared "
                              f"({from_recipe('vocab_size')})")
    command.add_argument("--shared-vocab", action="store_true",
                         help="one vocabulary for both languages")
    command.add_argument("--warmup-steps", type=int, default=None,
                         help=f"linear warmup of the paper's learning-rate schedule "
                              f"({from_recipe('warmup_steps')})")
    command.add_argument("--learning-rate-scale", type=float, default=None,
                         help=f"multiplies the paper's schedule "
                              f"({from_recipe('learning_rate_scale')})")
    command.add_argument("--label-smoothing", type=float, default=None,
                         help=f"epsilon of label smoothing ({from_recipe('label_smoothing')})")
    command.add_argument("--seed", type=int, default=defaults.seed,
                         help="seed of data generation, splits, shuffling and initialization "
                              f"(default {defaults.seed})")
    command.add_argument("--out", default="runs/default", help="the run directory (default: "
                                                                "runs/default)")
    command.add_argument("--jit-compile", action="store_true",
                         help="compile training steps with XLA")
    command.add_argument("--mixed-precision", choices=PRECISIONS, default=None,
                         help="compute the layers in 16-bit floats (weights, logits and loss "
                              "stay float32); auto: bfloat16 on GPUs and CPUs that compute it "
                              f"natively, else float32 ({from_recipe('mixed_precision')})")
    command.add_argument("--intra-op-threads", type=int, default=None,
                         help="TensorFlow's threads within one op, 0: its default, one per core "
                              f"({from_recipe('intra_op_threads')})")
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
    command.add_argument("--n-best", type=int, default=0, metavar="N",
                         help="with --search beam: print the N best hypotheses of each "
                              "sentence, as SENTENCE_INDEX<TAB>SCORE<TAB>HYPOTHESIS lines")
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

    command = commands.add_parser(
        "average", help="average the last checkpoints of a run into averaged.keras",
        description="The mean of each weight over the last N checkpoints that `train "
                    "--keep-checkpoints N` (or --average-last N) kept, as the paper does it; "
                    "prints its validation BLEU and chrF beside the best model's.")
    command.add_argument("run_dir", help="a directory written by `train`")
    command.add_argument("--last", type=int, default=5, help="checkpoints to average")
    command.add_argument("--sentences", type=int, default=500,
                         help="validation sentences scored")
    command.set_defaults(run=average)

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
    command.add_argument("--beam-size", type=int, default=decoding.BEAM_SIZE,
                         help="beams of the beam_search signature")
    command.add_argument("--alpha", type=float, default=None,
                         help="GNMT length penalty exponent of the beam_search signature "
                              "(default: the run's, chosen by train on validation sentences, "
                              f"else {decoding.ALPHA})")
    command.add_argument("--tflite", nargs="+", default=None, metavar="VARIANT",
                         help="TFLite files to write (default: all of translate, "
                              "translate_float16, translate_int8, ids_float32, ids_float16, "
                              "ids_int8)")
    command.add_argument("--no-tflite", action="store_true", help="write no TFLite file")
    command.add_argument("--format", choices=("saved_model", "ctranslate2"), default="saved_model",
                         help="saved_model (default: the SavedModels and TFLite files), or "
                              "ctranslate2: a CTranslate2 model directory with the vocabularies "
                              "and SentencePiece models (default --out: "
                              "saved_models/RUN_DIR_NAME_ctranslate2)")
    command.add_argument("--quantization", default="float32",
                         choices=("float32", "int8", "int8_float32", "float16", "int8_float16",
                                  "bfloat16"),
                         help="--format ctranslate2: the weights' type (default float32)")
    command.set_defaults(run=export)
    return parser


# what `pip install 'keras-transformer[EXTRA]'` brings, by the module a command missed
EXTRAS = {"tensorflow": "tensorflow", "tensorflow_text": "tensorflow", "sentencepiece": "tensorflow",
          "sacrebleu": "tensorflow", "matplotlib": "plots", "ai_edge_litert": "tflite",
          "ctranslate2": "ctranslate2"}


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:
        extra = EXTRAS.get((error.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"error: this command needs {error.name}, which is not installed: "
              f"pip install 'keras-transformer[{extra}]'", file=sys.stderr)
        return 2
