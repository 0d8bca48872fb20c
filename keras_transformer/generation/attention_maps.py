"""What the model attended to while it translated one sentence: every layer, head and kind.

The weights are those of the cached greedy decoding (`decoding.greedy_decode_with_attention`),
the search that `translate` runs: what the model did, token by token. `plots.plot_attention`
draws them and `attention_page.write_attention_page` makes a page to explore them.
"""

import dataclasses

import numpy as np

from keras_transformer.generation.decoding import END_ID, START_ID
from keras_transformer.layers.masks import PAD_ID

# kind -> (what it is, rows (queries), columns (keys))
KINDS = {
    "self": ("encoder self-attention", "source token", "source token"),
    "masked": ("decoder masked self-attention", "decoder input", "decoder input"),
    "cross": ("cross-attention", "generated token", "source token"),
}


@dataclasses.dataclass
class AttentionMaps:
    """The attention weights of one translation, float32, layers first.

    S counts the source tokens ([START] ... [END]), T the generated tokens (up to and with
    [END]). Decoding step t reads `decoder_tokens[t]` ([START], then the previous output)
    and generates `output_tokens[t]`:
        encoder (N, h, S, S): each encoder layer's self-attention;
        masked (N, h, T, T): the decoder's masked self-attention, row t over steps 0..t;
        cross (N, h, T, S): the decoder's attention over the source.
    """

    sentence: str
    source_tokens: list
    decoder_tokens: list
    output_tokens: list
    encoder: np.ndarray
    masked: np.ndarray
    cross: np.ndarray

    @property
    def num_layers(self):
        return self.masked.shape[0]

    @property
    def num_heads(self):
        return self.masked.shape[1]

    def weights(self, kind):
        """(N, h, rows, columns) weights of `kind` ("self", "masked" or "cross")."""
        return {"self": self.encoder, "masked": self.masked, "cross": self.cross}[kind]

    def labels(self, kind):
        """The row (query) tokens and the column (key) tokens of `kind`."""
        return {"self": (self.source_tokens, self.source_tokens),
                "masked": (self.decoder_tokens, self.decoder_tokens),
                "cross": (self.output_tokens, self.source_tokens)}[kind]

    def masked_cells(self, kind):
        """(rows, columns) bool, True where the mask forbids attention (weight exactly 0)."""
        rows, columns = self.weights(kind).shape[2:]
        if kind == "masked":  # the future: key position > query position
            return np.triu(np.ones((rows, columns), bool), k=1)
        return np.zeros((rows, columns), bool)

    @classmethod
    def from_decoding(cls, sentence, source_ids, decoded, source_token, target_token):
        """Sentence 0 of `greedy_decode_with_attention`'s result, cut to what it generated.

        Args:
            source_ids: (S,) the sentence's source ids (padding, if any, at the end).
            decoded: (tokens, encoder weights, masked weights, cross weights) as
                `decoding.greedy_decode_with_attention` returns them.
            source_token, target_token: id (int) -> token string.
        """
        tokens, encoder, masked, cross = decoded
        tokens = np.asarray(tokens)[0]
        ends = np.flatnonzero(tokens == END_ID)
        length = int(ends[0]) + 1 if len(ends) else len(tokens)  # T, with [END]
        source_ids = np.asarray(source_ids)
        source_length = int(np.sum(source_ids != PAD_ID))
        outputs = [int(i) for i in tokens[:length]]

        def stack(layers, rows, columns):  # per-layer (1, h, ., .) -> (N, h, rows, columns)
            return np.stack([np.asarray(w)[0, :, :rows, :columns] for w in layers]).astype(
                np.float32)

        return cls(sentence=sentence,
                   source_tokens=[source_token(int(i)) for i in source_ids[:source_length]],
                   decoder_tokens=[target_token(i) for i in [START_ID] + outputs[:-1]],
                   output_tokens=[target_token(i) for i in outputs],
                   encoder=stack(encoder, source_length, source_length),
                   masked=stack(masked, length, length),
                   cross=stack(cross, length, source_length))
