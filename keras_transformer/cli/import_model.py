"""`import`: a pretrained Marian / OPUS-MT translator as a run directory of ours."""


def add_parser(commands):
    command = commands.add_parser(
        "import", help="import a pretrained Marian / OPUS-MT model as a run directory",
        description="Reads a Marian model, in Hugging Face's MarianMTModel layout (config.json, "
                    "vocab.json, source.spm, target.spm, model.safetensors or tf_model.h5) or "
                    "Marian's own release (model.npz, *.vocab.yml, source.spm, target.spm), and "
                    "writes a run directory that translate, evaluate, attention and export read. "
                    "A model with an option we do not support is refused, the option named, "
                    "and nothing is written.")
    command.add_argument("model_dir", help="the downloaded model's directory")
    command.add_argument("--out", required=True, help="the run directory to write (new or empty)")
    command.add_argument("--target-language", default=None, metavar="CODE",
                         help="a multilingual model's default target language (por for >>por<<); "
                              "translate --target-language chooses another")
    command.add_argument("--max-length", type=int, default=None,
                         help="the longest source and translation, in pieces (default: 512)")
    return command


def run(args):
    import sys

    from keras_transformer.pretrained.marian import import_marian
    from keras_transformer.pretrained.marian_files import UnsupportedCheckpoint

    try:
        import_marian(args.model_dir, args.out, max_length=args.max_length,
                      target_language=args.target_language)
    except (UnsupportedCheckpoint, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
