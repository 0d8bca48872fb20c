"""`score`: the model's log-probability of given translations (forced decoding), one line per pair."""

import sys

from keras_transformer.cli.options import open_translator


def add_parser(commands):
    command = commands.add_parser(
        "score", help="score given translations (forced decoding): one line per pair",
        description="Prints LOG_PROB<TAB>TOKENS<TAB>PER_TOKEN<TAB>NORMALIZED for every line of "
                    "--data, in order: the summed natural log-probability of the target given "
                    "the source ([END] included), the tokens summed, their mean, and the sum "
                    "normalized as beam search ranks hypotheses (GNMT, --alpha). A line that is "
                    "no pair (a TSV line without a tab) prints 'nan' columns and is named on "
                    "stderr. Sort by a column to filter a noisy corpus or rank candidates.")
    command.add_argument("run_dir", help="a directory written by `train` (or, with --engine "
                                         "ctranslate2, one written by export --format ctranslate2)")
    command.add_argument("--data", default=None,
                         help="a TSV or SOURCE,TARGET files (default: the run's test split)")
    command.add_argument("--alpha", type=float, default=None,
                         help="the length penalty exponent of NORMALIZED (default: the run's)")
    command.add_argument("--batch-size", type=int, default=None,
                         help="pairs scored together (default: 64)")
    command.add_argument("--engine", choices=("keras", "ctranslate2"), default="keras",
                         help="keras (default), or ctranslate2 (its score_batch)")
    command.add_argument("--compute-type", default="default",
                         help="--engine ctranslate2: the engine's compute type")
    command.add_argument("--target-language", default=None, metavar="CODE",
                         help="a multilingual imported model's target language")
    return command


def run(args):
    from keras_transformer.generation.scoring import UNSCORED_LINE
    from keras_transformer.run_dir import RunDir
    from pipelines.readers import pairs_by_line

    args.jit_compile = False
    run_dir = RunDir(args.run_dir)
    if args.data is None and not run_dir.settings_file.exists():
        print(f"error: {args.run_dir} is no run directory with a test split: give --data",
              file=sys.stderr)
        return 2
    data = args.data or str(run_dir.split_file("test"))
    lines = list(pairs_by_line(data))
    translator = open_translator(args)
    alpha = args.alpha
    if alpha is None:
        alpha = translator.alpha if args.engine == "ctranslate2" else run_dir.beam_alpha()
    pairs = [pair for _, pair, _ in lines if pair is not None]
    scores = iter(translator.score([s for s, _ in pairs], [t for _, t in pairs], alpha=alpha,
                                   batch_size=args.batch_size))
    long_targets = 0
    for where, pair, why in lines:
        if pair is None:
            print(f"{where}: {why}: not scored", file=sys.stderr)
            print(UNSCORED_LINE)
            continue
        score = next(scores)
        long_targets += score.tokens >= translator.max_length  # pieces fill the budget: maybe cut
        print(score.line())
    if long_targets:
        print(f"note: {long_targets} targets filled max_length ({translator.max_length - 1} "
              "pieces and [END]): a longer one was scored on its first pieces only",
              file=sys.stderr)
    return 0
