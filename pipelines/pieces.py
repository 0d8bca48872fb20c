"""SentencePiece pieces as text: what a piece reads as in a translation. No TensorFlow.

One definition for the graph's detokenizer (`pipelines.tokenizers`, a table lookup and a join) and
for plain Python (`detokenize_pieces`, the CTranslate2 engine): "▁" (a word start) is a space except
before the first piece with text, [UNK] reads as "⁇", [PAD], [START] and [END] read as nothing.
"""

from pipelines.special_tokens import END_ID, RESERVED_TOKENS, UNK_ID

UNKNOWN_TEXT = "⁇"


def piece_texts(processor) -> list[str]:
    """The text of every piece of a `sentencepiece.SentencePieceProcessor`, twice: as the first
    piece of a sentence (ids 0..V-1), then anywhere else (V..2V-1); "" for [PAD], [START], [END]."""
    first, rest = [], []
    for piece_id in range(processor.get_piece_size()):
        if processor.is_unknown(piece_id):
            piece = UNKNOWN_TEXT  # a word-initial [UNK] comes after a bare "▁" piece
        elif processor.is_control(piece_id):
            piece = ""
        else:
            piece = processor.id_to_piece(piece_id)
        first.append(piece.removeprefix("▁").replace("▁", " "))
        rest.append(piece.replace("▁", " "))
    return first + rest


def vocabulary_texts(vocabulary) -> list[str]:
    """`piece_texts` for a model vocabulary (pieces id by id, `RESERVED_TOKENS` first) that is
    not a SentencePiece model's own (an imported Marian model's)."""
    first, rest = [], []
    for piece_id, piece in enumerate(vocabulary):
        if piece_id < len(RESERVED_TOKENS):
            piece = UNKNOWN_TEXT if piece_id == UNK_ID else ""
        first.append(piece.removeprefix("▁").replace("▁", " "))
        rest.append(piece.replace("▁", " "))
    return first + rest


def detokenize_pieces(pieces) -> str:
    """Output pieces (strings, [END] optional) -> the translation, as the graph's detokenizer
    reads the same ids: stops at [END], skips [PAD] and [START]."""
    words, started = [], False
    for piece in pieces:
        if piece == RESERVED_TOKENS[END_ID]:
            break
        if piece in RESERVED_TOKENS and piece != RESERVED_TOKENS[UNK_ID]:
            continue
        text = UNKNOWN_TEXT if piece == RESERVED_TOKENS[UNK_ID] else piece
        words.append(text.replace("▁", " ") if started else text.removeprefix("▁").replace("▁", " "))
        started = started or piece != "▁"
    return "".join(words)
