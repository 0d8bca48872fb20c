"""`evaluate`: BLEU, chrF and exact match of a run's translations of a test set."""

from keras_transformer.cli.options import add_search_options, open_translator, search_options


def add_parser(commands):
    command = commands.add_parser(
        "evaluate", help="BLEU, chrF and exact match on the run's test split or a TSV")
    command.add_argument("run_dir", help="a directory written by `train`")
    command.add_argument("--data", default=None,
                         help="a TSV or SOURCE,TARGET files (default: the run's test split)")
    command.add_argument("--hypotheses", default=None,
                         help="where to write the translations (default: RUN_DIR/hypotheses.txt)")
    add_search_options(command)
    return command


def run(args):
    from keras_transformer.generation.evaluation import score_translations
    from keras_transformer.run_dir import RunDir
    from pipelines.normalization import normalize
    from pipelines.readers import load_pairs

    run_dir = RunDir(args.run_dir)
    translator = open_translator(args)
    data = args.data or str(run_dir.split_file("test"))
    pairs, report = load_pairs(data)
    print(f"{data}: {report.summary()}")
    sources = [source for source, _ in pairs]
    references = [normalize(target) for _, target in pairs]  # as the outputs are
    hypotheses = translator.translate(sources, args.search, args.batch_size,
                                      **search_options(args))
    out = args.hypotheses or run_dir.hypotheses
    with open(out, "w", encoding="utf-8") as file:
        file.writelines(hypothesis + "\n" for hypothesis in hypotheses)
    scores = score_translations(hypotheses, references)
    print(f"BLEU {scores['bleu']:.1f} (sacrebleu, tokenize={scores['bleu_tokenize']})")
    print(f"chrF {scores['chrf']:.1f}")
    print(f"exact match {100 * scores['exact_match']:.1f}% ({scores['sentences']} sentences)")
    print(f"hypotheses: {out}")
    return 0
