"""`python -m keras_transformer SUBCOMMAND`: argument parsing only, one thin function each."""

import argparse

from keras_transformer.config import PRESETS


def summary(args):
    from keras_transformer import build_transformer, preset

    config = preset(args.preset, source_vocab_size=args.vocab_size,
                    target_vocab_size=args.vocab_size)
    model = build_transformer(config)
    model.summary()
    print(f"{args.preset}: {model.count_params():,} parameters")
    return 0


def build_parser():
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
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.run(args)
