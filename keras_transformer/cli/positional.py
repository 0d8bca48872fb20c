"""`positional`: a figure of the sinusoidal positional encoding."""


def add_parser(commands):
    command = commands.add_parser("positional", help="plot the sinusoidal positional encoding")
    command.add_argument("--out", default="positional_encoding.png", help="the PNG to write")
    command.add_argument("--length", type=int, default=64, help="positions")
    command.add_argument("--d-model", type=int, default=128, help="dimensions")
    return command


def run(args):
    from keras_transformer.viz.plots import plot_positional_encoding

    plot_positional_encoding(args.out, args.length, args.d_model)
    print(f"wrote {args.out}")
    return 0
