"""`python -m keras_transformer COMMAND` (or `keras-transformer COMMAND`): one thin module per
command, each with `add_parser(commands)` and `run(args)` over the library's functions.

    summary     build a preset's model and print its layers
    train       train (or resume) a run directory: `training.job.train`
    translate   sentences in, translations out: `engines.load_translator`
    evaluate    BLEU, chrF and exact match on a test set
    score       the model's log-probability of given translations (forced decoding)
    attention   the attention weights of one translation, as a figure or a page
    average     checkpoint averaging
    positional  the sinusoidal positional encoding, as a figure
    export      SavedModel, TFLite and CTranslate2 files for serving
    import      a pretrained Marian / OPUS-MT model as a run directory (module `import_model`)

Options may come before or after a command's positional arguments (`translate RUN --search beam
"A sentence."`): each command's arguments are parsed intermixed. Nothing imports the CLI.
"""

import argparse
import importlib
import sys

COMMANDS = ("summary", "train", "translate", "evaluate", "score", "attention", "average",
            "positional", "export", "import")
MODULES = {"import": "import_model"}  # a command whose module cannot take its name

# what `pip install 'keras-transformer[EXTRA]'` brings, by the module a command missed
EXTRAS = {"tensorflow": "tensorflow", "tensorflow_text": "tensorflow", "sentencepiece": "tensorflow",
          "sacrebleu": "tensorflow", "matplotlib": "plots", "ai_edge_litert": "tflite",
          "ctranslate2": "ctranslate2", "safetensors": "pretrained", "yaml": "pretrained",
          "h5py": "pretrained"}


def build_parser():
    """The whole command line: one sub-parser per command (`parser.commands[name]`)."""
    parser = argparse.ArgumentParser(
        prog="keras-transformer",
        description="The Transformer of 'Attention Is All You Need' in Keras 3.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"keras_transformer.cli.{MODULES.get(name, name)}")
        module.add_parser(commands).set_defaults(run=module.run)
    parser.commands = commands.choices
    return parser


def parse_args(argv):
    """The arguments of `argv` (a command and its arguments, options intermixed)."""
    parser = build_parser()
    if argv and argv[0] in parser.commands:
        command = parser.commands[argv[0]]
        args = command.parse_intermixed_args(argv[1:])
        args.command = argv[0]
        return args
    return parser.parse_args(argv)  # help, or the error that names the commands


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    from pipelines.readers import DataError

    try:
        return args.run(args)
    except (FileNotFoundError, DataError) as error:  # a data file that is missing or unreadable
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:
        extra = EXTRAS.get((error.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"error: this command needs {error.name}, which is not installed: "
              f"pip install 'keras-transformer[{extra}]'", file=sys.stderr)
        return 2
