"""`average`: the mean of a run's last checkpoints, scored beside its best model."""


def add_parser(commands):
    command = commands.add_parser(
        "average", help="average the last checkpoints of a run into averaged.keras",
        description="The mean of each weight over the last N checkpoints that `train "
                    "--keep-checkpoints N` (or --average-last N) kept, as the paper does it; "
                    "prints its validation BLEU and chrF beside the best model's.")
    command.add_argument("run_dir", help="a directory written by `train`")
    command.add_argument("--last", type=int, default=5, help="checkpoints to average (default: 5)")
    command.add_argument("--sentences", type=int, default=500,
                         help="validation sentences scored (default: 500)")
    return command


def run(args):
    from keras_transformer.generation.evaluation import score_translations
    from keras_transformer.generation.translator import Translator
    from keras_transformer.run_dir import RunDir
    from keras_transformer.training.averaging import average_run
    from keras_transformer.training.job import validation_pairs

    run_dir = RunDir(args.run_dir)
    averaged, files = average_run(run_dir, args.last)
    print(f"averaged {len(files)} checkpoints ({files[0].name} ... {files[-1].name}) into "
          f"{run_dir.averaged_model}")
    best, text_path, _ = run_dir.load_trained(run_dir.best_model)
    sources, references = validation_pairs(run_dir, args.sentences)
    for name, model in (("best", best), ("averaged", averaged)):
        scores = score_translations(Translator(model, text_path).translate(sources), references)
        print(f"validation ({len(sources)} sentences), {name}: BLEU {scores['bleu']:.2f}, "
              f"chrF {scores['chrf']:.2f}")
    return 0
