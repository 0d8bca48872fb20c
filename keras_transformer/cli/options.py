"""Options several commands share, each declared once: `train`'s are made from `TrainSettings`'
field declarations, the searches' (translate, evaluate) are declared here."""

import argparse
import dataclasses
import json
import types

from keras_transformer.config import TransformerConfig
from keras_transformer.generation import defaults


def parse_overrides(pairs):
    """["num_layers=3", "dropout=0.2"] -> {"num_layers": 3, "dropout": 0.2}, each key checked
    against `TransformerConfig`'s fields (argparse.ArgumentTypeError otherwise)."""
    fields = {field.name for field in dataclasses.fields(TransformerConfig)}
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in fields:
            raise argparse.ArgumentTypeError(
                f"--set {pair!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(fields))}")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value  # a bare string such as pre
    return overrides


def _value_type(annotation):
    """int for `int | None`, and so on: the type argparse converts the option's text to."""
    if isinstance(annotation, types.UnionType):
        return next(arg for arg in annotation.__args__ if arg is not type(None))
    return annotation


def add_settings_options(parser, settings_class, default_text):
    """One option per field of `settings_class` declared with `training.settings.option`.

    `default_text(field)` says what a field left out becomes (its default, or each recipe's);
    the option's value is None when it is left out, so the settings' own defaults apply.
    """
    for field in dataclasses.fields(settings_class):
        declared = field.metadata
        if "help" not in declared:
            continue
        flag = declared["flag"] or "--" + field.name.replace("_", "-")
        help_text = f"{declared['help']} ({default_text(field)})"
        value_type = _value_type(field.type)
        options = dict(dest=field.name, help=help_text)
        if declared["metavar"]:
            options["metavar"] = declared["metavar"]
        if field.name == "overrides":  # KEY=VALUE pairs, checked against TransformerConfig
            parser.add_argument(flag, action="append", default=[], type=_one_override, **options)
            continue
        if value_type is bool:
            if field.default is None:  # three states: the recipe's, --x, --no-x
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                                    **options)
            else:
                parser.add_argument(flag, action="store_true", default=field.default, **options)
            continue
        if declared["choices"]:
            options["choices"] = declared["choices"]
        parser.add_argument(flag, type=value_type, default=field.default, **options)


def _one_override(pair):
    return next(iter(parse_overrides([pair]).items()))


def add_search_options(parser):
    """The decoding options of translate and evaluate (what `search_options` reads)."""
    parser.add_argument("--search", choices=defaults.SEARCHES, default="greedy",
                        help="decoding: greedy, beam search, or sampling")
    parser.add_argument("--beam-size", type=int, default=defaults.BEAM_SIZE,
                        help=f"beams (--search beam; default {defaults.BEAM_SIZE})")
    parser.add_argument("--alpha", type=float, default=None,
                        help="GNMT length penalty exponent (--search beam; default: the run's, "
                             f"chosen by train on validation sentences, else {defaults.ALPHA})")
    parser.add_argument("--no-repeat-ngram", type=int, default=0, metavar="N",
                        help="never repeat an n-gram of the output (0: off)")
    parser.add_argument("--temperature", type=float, default=1.0, help="(--search sample)")
    parser.add_argument("--top-k", type=int, default=None, help="(--search sample)")
    parser.add_argument("--top-p", type=float, default=None, help="(--search sample)")
    parser.add_argument("--seed", type=int, default=0, help="(--search sample)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"sentences decoded together (default: {defaults.BATCH_ROWS} "
                             f"hypotheses' worth: {defaults.BATCH_ROWS} sentences greedily, "
                             f"{defaults.BATCH_ROWS // defaults.BEAM_SIZE} with beam "
                             f"{defaults.BEAM_SIZE})")
    parser.add_argument("--jit-compile", action="store_true",
                        help="compile decoding with XLA (compiles once per input shape)")
    parser.add_argument("--target-language", default=None, metavar="CODE",
                        help="a multilingual imported model's target language, e.g. por for "
                             ">>por<< (default: the one chosen at import)")
    parser.add_argument("--engine", choices=("keras", "ctranslate2"), default="keras",
                        help="keras (default), or ctranslate2: the run's model converted for "
                             "CTranslate2 on first use (RUN_DIR/ctranslate2/); RUN_DIR may also "
                             "be a directory written by export --format ctranslate2")
    parser.add_argument("--compute-type", default="default",
                        help="--engine ctranslate2: the engine's compute type, e.g. int8, "
                             "int8_float32, float16 (default: as the weights were saved)")


def search_options(args):
    """The --search choice's options, as Translator.translate takes them; beam search's alpha is
    the run's (chosen by `train` on validation sentences) unless --alpha is given."""
    from keras_transformer.run_dir import RunDir

    options = {"no_repeat_ngram": args.no_repeat_ngram}
    if args.search == "beam":
        alpha = RunDir(args.run_dir).beam_alpha() if args.alpha is None else args.alpha
        options.update(beam_size=args.beam_size, alpha=alpha)
    if args.search == "sample":
        options.update(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                       seed=args.seed)
    return options


def open_translator(args):
    """The translator of --engine over the run (or a CTranslate2 export directory)."""
    from keras_transformer.engines import load_translator

    return load_translator(args.run_dir, jit_compile=args.jit_compile, engine=args.engine,
                           compute_type=args.compute_type,
                           target_language=getattr(args, "target_language", None))
