"""Text normalization: one definition, compiled into every SentencePiece model we train.

The rules are SentencePiece's `nmt_nfkc` (Unicode NFKC, with the NMT additions: every Unicode space,
tab and line break becomes a space) with two changes:

- format and zero-width characters (Unicode category Cf: U+200B ZERO WIDTH SPACE, U+200C/U+200D,
  U+2060, U+FEFF, the soft hyphen, bidirectional marks) are dropped, where `nmt_nfkc` turns most of
  them into spaces;
- control characters (Cc), C1 controls included, are dropped, but for tab, line breaks and NEL
  (U+0085), which are spaces.

U+FFFD REPLACEMENT CHARACTER stays (nmt_nfkc makes it a space): it reads as [UNK], as an invalid UTF-8
byte does, so text repaired with U+FFFD and the raw bytes get the same ids. Then runs of spaces become
one, and leading and trailing spaces go. Accents and case are kept
("Ünïcödé" stays as it is; "e" + U+0301 becomes "é"; "ﬁ" becomes "fi"; "Ｆｕｌｌ" becomes "Full").

The rules are compiled into the model's `normalizer_spec` when a tokenizer is learned, and
SentencePiece, tensorflow-text's `FastSentencepieceTokenizer`, the SavedModel and the TFLite model all
apply them from there: the same sentence gives the same ids wherever it runs. `normalize` applies the
same rules in Python (to references, hypotheses and reports).
"""

import atexit
import functools
import os
import shutil
import tempfile
import unicodedata

import sentencepiece as spm

# controls that separate words: they become a space like every other Unicode space
_SPACE_CONTROLS = frozenset("\t\n\r\x0b\x0c\x85")


@functools.cache
def normalization_rules() -> tuple[tuple[str, str], ...]:
    """(from, to) string pairs: SentencePiece's nmt_nfkc with format and control characters dropped."""
    spm.set_min_log_level(2)
    rules = dict(spm.SentencePieceNormalizer(rule_name="nmt_nfkc").decompile())
    for code_point in range(1, 0x110000):
        if 0xD800 <= code_point <= 0xDFFF:  # surrogates: not characters
            continue
        character = chr(code_point)
        category = unicodedata.category(character)
        if character in _SPACE_CONTROLS:
            rules[character] = " "
        elif category in ("Cc", "Cf"):
            rules[character] = ""
    # nmt_nfkc makes U+FFFD a space; kept, it reads as [UNK], as do invalid UTF-8 bytes (which
    # SentencePiece reads as U+FFFD): the same answer whether text was repaired or not
    del rules["\ufffd"]
    return tuple(sorted(rules.items()))


@functools.cache
def rules_tsv() -> str:
    """A file of the rules in SentencePiece's TSV form (`normalization_rule_tsv`: hex code points,
    from<TAB>to), written once per process into a folder removed at exit."""
    def hexes(text):
        return " ".join(f"{ord(character):X}" for character in text)

    folder = tempfile.mkdtemp(prefix="normalization-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = os.path.join(folder, "rules.tsv")
    with open(path, "w", encoding="ascii") as file:
        file.writelines(f"{hexes(source)}\t{hexes(target)}\n" for source, target in normalization_rules())
    return path


@functools.cache
def _normalizer():
    spm.set_min_log_level(2)
    return spm.SentencePieceNormalizer(norm_map=list(normalization_rules()), add_dummy_prefix=False,
                                       escape_whitespaces=False, remove_extra_whitespaces=True)


def normalize(text: str) -> str:
    """`text` as every tokenizer of ours sees it (see the module docstring). A lone surrogate
    (a str that is no valid Unicode) reads as U+FFFD, as an invalid UTF-8 byte does."""
    try:
        return _normalizer().normalize(text)
    except (RuntimeError, UnicodeEncodeError):
        return _normalizer().normalize(utf8(text).decode("utf-8", errors="replace"))


def utf8(text: str) -> bytes:
    """`text` as UTF-8 bytes; a lone surrogate gives its (invalid) bytes, never an error."""
    return text.encode("utf-8", errors="surrogatepass")
