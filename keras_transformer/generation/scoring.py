"""Scores of given translations (forced decoding): how likely the model finds a target given its
source, for filtering a noisy corpus, ranking candidates or checking a human translation.

Both engines (`Translator.score`, `CTranslate2Translator.score`) answer with `PairScore`s. The
target is framed as in training, [START] pieces [END] with at most max_length - 1 pieces; the
score is the teacher-forced log-probability of every token after [START], [END] included, so a
translation scores as beam search found it (`decoding.beam_search`'s log_probs).
"""

import dataclasses
import math

from keras_transformer.generation import defaults


@dataclasses.dataclass(frozen=True)
class PairScore:
    """The model's score of one (source, target) pair.

    log_prob: the summed natural log-probability of the target's tokens ([END] included).
    tokens: how many tokens that sums (the target's pieces, cut at max_length - 1, plus [END]).
    normalized: log_prob / ((5 + tokens) / 6) ** alpha, beam search's ranking (GNMT).
    """

    log_prob: float
    tokens: int
    normalized: float

    @property
    def per_token(self) -> float:
        return self.log_prob / self.tokens

    @classmethod
    def of(cls, token_log_probs, alpha=defaults.ALPHA):
        """The score of a target from its tokens' log-probabilities."""
        log_prob, tokens = float(math.fsum(token_log_probs)), len(token_log_probs)
        return cls(log_prob, tokens, log_prob / ((5.0 + tokens) / 6.0) ** alpha)

    def line(self) -> str:
        """LOG_PROB<TAB>TOKENS<TAB>PER_TOKEN<TAB>NORMALIZED: what `score` prints per pair."""
        return (f"{self.log_prob:.4f}\t{self.tokens}\t{self.per_token:.4f}\t"
                f"{self.normalized:.4f}")


UNSCORED_LINE = "nan\t0\tnan\tnan"  # what `score` prints for a line it cannot read as a pair
