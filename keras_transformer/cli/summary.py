"""`summary`: build a preset's model and print its layers."""

from keras_transformer.config import PRESETS


def add_parser(commands):
    command = commands.add_parser("summary", help="build a preset's model and print its layers")
    command.add_argument("--preset", choices=sorted(PRESETS), default="small",
                         help="model size (default: small)")
    command.add_argument("--vocab-size", type=int, default=8000,
                         help="source and target vocabulary size (default: 8000)")
    return command


def run(args):
    from keras_transformer import build_transformer, preset

    config = preset(args.preset, source_vocab_size=args.vocab_size,
                    target_vocab_size=args.vocab_size)
    model = build_transformer(config)
    model.summary()
    print(f"{args.preset}: {model.count_params():,} parameters")
    return 0
