"""Translation quality: BLEU and chrF from sacrebleu, and exact match."""

import sacrebleu


def exact_match(hypotheses, references):
    """Fraction of hypotheses identical to their reference."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    return sum(h == r for h, r in zip(hypotheses, references)) / max(len(references), 1)


def score_translations(hypotheses, references) -> dict:
    """Corpus BLEU and chrF (sacrebleu defaults: 13a tokenization) and exact match."""
    if not references:
        raise ValueError("nothing to score: no references")
    # force: corpora that come tokenized (IWSLT) would otherwise print a warning at every call
    return {"bleu": sacrebleu.corpus_bleu(hypotheses, [references], force=True).score,
            "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
            "exact_match": exact_match(hypotheses, references),
            "sentences": len(references)}
