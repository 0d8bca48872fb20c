"""`translate`: sentences from the arguments, --file or standard input; one line out per line in."""

import sys

from keras_transformer.cli.options import add_search_options, open_translator, search_options


def add_parser(commands):
    command = commands.add_parser(
        "translate", help="translate sentences with a trained run",
        description="Sentences come from the arguments, else --file, else standard input (one per "
                    "line); translations are printed one per line. Options may come before or "
                    "after the sentences.")
    command.add_argument("run_dir", help="a directory written by `train`")
    command.add_argument("sentences", nargs="*", help="sentences to translate")
    command.add_argument("--file", default=None, help="a file of sentences, or - for stdin")
    command.add_argument("--n-best", type=int, default=0, metavar="N",
                         help="with --search beam: print the N best hypotheses of each sentence, "
                              "as SENTENCE_INDEX<TAB>SCORE<TAB>HYPOTHESIS lines")
    command.add_argument("--prefix", default=None, metavar="TEXT",
                         help="target words every translation starts with: the search continues "
                              "them (interactive translation; at most max_length - 1 pieces)")
    add_search_options(command)
    return command


def read_sentences(args):
    """The sentences to translate: one per line of --file or standard input (split on "\\n" only,
    so every input line gets exactly one output line); bytes that are not UTF-8 become U+FFFD."""
    if args.sentences:
        return args.sentences
    if args.file not in (None, "-"):
        with open(args.file, "rb") as file:
            data = file.read()
    else:
        data = sys.stdin.buffer.read()
    lines = data.split(b"\n")
    if lines and not lines[-1]:  # the newline that ends the last line starts no new one
        lines.pop()
    return [line.rstrip(b"\r").decode("utf-8", errors="replace") for line in lines]


def run(args):
    if args.n_best and args.search != "beam":
        print("error: --n-best needs --search beam", file=sys.stderr)
        return 2
    if args.n_best and args.prefix is not None:
        print("error: --prefix is not implemented with --n-best", file=sys.stderr)
        return 2
    translator = open_translator(args)
    sentences = read_sentences(args)
    if args.n_best:
        options = search_options(args)
        options["beam_size"] = max(options["beam_size"], args.n_best)
        for index, hypotheses in enumerate(translator.translate_nbest(
                sentences, args.n_best, args.batch_size, **options)):
            for score, text in hypotheses:  # SENTENCE<TAB>SCORE<TAB>HYPOTHESIS, best first
                print(f"{index}\t{score:.4f}\t{text}")
        return 0
    prefixes = None if args.prefix is None else [args.prefix] * len(sentences)
    for translation in translator.translate(sentences, args.search, args.batch_size,
                                            prefixes=prefixes, **search_options(args)):
        print(translation.replace("\n", " "))  # one line out per line in
    return 0
