"""Beam search's length penalty, chosen on the validation set.

Beam search ranks hypotheses by log-probability / ((5 + length) / 6) ** alpha (GNMT). How much
length needs that help depends on the model: one trained for minutes gives short hypotheses
too much probability, and beam search with the usual alpha 0.6 then translates worse than
greedy decoding (the IWSLT measurements in docs/recipes.md). So the train job tries a few alphas on
validation sentences and stores the best in the run (`RunDir.decoding_file`); translate, evaluate
and export use it unless given `--alpha`.
"""

from keras_transformer.generation import defaults

ALPHAS = (0.6, 1.0, 1.5, 2.0)  # 0.6: GNMT's value; above 2, hypotheses run on to max_length


def choose_alpha(translator, sources, references, beam_size=defaults.BEAM_SIZE, alphas=ALPHAS):
    """The alpha whose beam search scores the best corpus BLEU on (sources, references); ties go
    to the smaller alpha. Returns what the run stores: {"beam_size", "alpha", "sentences",
    "validation_bleu": {alpha: BLEU}, "greedy_validation_bleu"}."""
    from keras_transformer.generation.evaluation import score_translations

    if not sources:
        raise ValueError("choose_alpha needs validation sentences")
    bleu = {}
    for alpha in sorted(alphas):
        hypotheses = translator.translate(sources, "beam", beam_size=beam_size, alpha=alpha)
        bleu[alpha] = score_translations(hypotheses, references)["bleu"]
    best = max(bleu, key=lambda alpha: (bleu[alpha], -alpha))
    greedy = score_translations(translator.translate(sources), references)["bleu"]
    return {"beam_size": beam_size, "alpha": best, "sentences": len(sources),
            "validation_bleu": {str(alpha): round(score, 3) for alpha, score in bleu.items()},
            "greedy_validation_bleu": round(greedy, 3)}
