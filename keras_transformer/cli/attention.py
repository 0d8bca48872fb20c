"""`attention`: draw the attention weights that one greedy translation computed."""

import argparse
import sys


def attention_layer(value):
    """--layer: "all" or a layer index (0 the first, -1 the last)."""
    if value == "all":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a layer number or all, got {value!r}")


def add_parser(commands):
    command = commands.add_parser(
        "attention", help="plot the attention weights of one translation, head by head",
        description="Translates the sentence greedily with the cached decoding and draws the "
                    "weights it computed: the encoder self-attention (self), the decoder's masked "
                    "self-attention (masked) and the cross-attention (cross), one panel per head. "
                    "--html writes a page to explore every layer, head and kind in a browser.")
    command.add_argument("run_dir", help="a directory written by `train`")
    command.add_argument("sentence", help="the sentence to translate")
    command.add_argument("--kind", choices=("self", "masked", "cross", "all"), default="all",
                         help="which attention to draw (default: all three)")
    command.add_argument("--layer", default=-1, type=attention_layer,
                         help="layer to draw: 0 is the first, -1 the last (default), or all")
    command.add_argument("--out", default=None,
                         help="the figure to write, .png/.svg/.pdf (default: attention.png, none "
                              "when only --html is given)")
    command.add_argument("--html", default=None, metavar="PATH",
                         help="also write a self-contained page where you pick layer, head and "
                              "kind and hover a cell to read its weight")
    return command


def run(args):
    from keras_transformer.engines import load_translator

    kinds = ("self", "masked", "cross") if args.kind == "all" else (args.kind,)
    layers = None if args.layer == "all" else [args.layer]
    translator = load_translator(args.run_dir)
    count = translator.parts.num_layers
    if layers and not -count <= args.layer < count:
        which = "0" if count == 1 else f"0 to {count - 1}"
        print(f"error: --layer {args.layer}: the model has {count} "
              f"layer{'s' * (count != 1)} ({which})", file=sys.stderr)
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
