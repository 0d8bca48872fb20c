"""Translation quality: BLEU and chrF from sacrebleu, and exact match."""

import sacrebleu


def exact_match(hypotheses, references):
    """Fraction of hypotheses identical to their reference."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    return sum(h == r for h, r in zip(hypotheses, references)) / max(len(references), 1)


def bleu_tokenizer(references) -> str:
    """sacrebleu's tokenizer for these references: "13a" (its default, words between spaces and
    punctuation), or "char" for text written without spaces between words (Japanese, Chinese,
    Thai: fewer than one space per 12 characters), where 13a would see whole sentences as words."""
    characters = sum(len(reference) for reference in references)
    spaces = sum(reference.count(" ") for reference in references)
    return "char" if characters and spaces * 12 < characters else "13a"


def score_translations(hypotheses, references) -> dict:
    """Corpus BLEU (tokenized by `bleu_tokenizer`) and chrF (sacrebleu) and exact match."""
    if not references:
        raise ValueError("nothing to score: no references")
    tokenize = bleu_tokenizer(references)
    # force: corpora that come tokenized (IWSLT) would otherwise print a warning at every call
    return {"bleu": sacrebleu.corpus_bleu(hypotheses, [references], tokenize=tokenize,
                                          force=True).score,
            "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
            "exact_match": exact_match(hypotheses, references),
            "sentences": len(references), "bleu_tokenize": tokenize}
