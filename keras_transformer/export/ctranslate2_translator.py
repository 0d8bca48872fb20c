"""Text in, text out on CTranslate2: the `Translator` contract over a converted model directory.

The directory is what `export --format ctranslate2` writes (`export/ctranslate2.py`). Sentences go
through the run's SentencePiece models (normalization included), are cut to max_length - 2 pieces
(the engine adds [START] and [END]; max_length - 1 for a model whose sources have no [START]), decoded by the engine and detokenized as the graph does it
(`pipelines.pieces`): the same answers as the Keras `Translator`, including "" for a sentence with
no piece. Translating calls ctranslate2 and sentencepiece only, no TensorFlow op (importing the
package still loads Keras and its backend).

Searches: greedy; beam search with our GNMT length penalty (the engine returns its K finished
hypotheses with their summed log-probabilities, ranked here by log_prob / ((5 + |Y|) / 6)^alpha,
|Y| counting [END], as `decoding.beam_search` ranks them); sampling (the engine's own random
stream: the same options, not the same samples as ours).
"""

import json
from pathlib import Path

from keras_transformer.generation.defaults import ALPHA, BATCH_ROWS, BEAM_SIZE, SEARCHES
from pipelines.pieces import detokenize_pieces

# the files of a model directory beside CTranslate2's own (model.bin, config.json, vocabularies)
ENGINE_FILE = "keras_transformer.json"
SOURCE_SPM, TARGET_SPM = "source.spm", "target.spm"


def require_ctranslate2():
    """The `ctranslate2` module, or an error that names the extra that installs it."""
    try:
        import ctranslate2
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            "CTranslate2 is not installed: pip install 'keras-transformer[ctranslate2]'",
            name="ctranslate2") from error
    return ctranslate2


def gnmt_score(log_prob, length, alpha):
    """log_prob / ((5 + length) / 6) ** alpha: `decoding.length_penalty`'s normalization."""
    return log_prob / ((5.0 + length) / 6.0) ** alpha


def _pieces(processor, sentences, budget):
    """The first `budget` pieces of each sentence, read from SentencePiece's ids. Text is encoded
    to UTF-8 first (a lone surrogate keeps its bytes), so every invalid byte reads as U+FFFD."""
    texts = [s.encode("utf-8", errors="surrogatepass").decode("utf-8", errors="replace")
             for s in sentences]
    return [[processor.id_to_piece(i) for i in ids[:budget]] for ids in processor.encode(texts)]


class CTranslate2Translator:
    """Translates lists of sentences with a CTranslate2 model directory.

    Args:
        directory: written by `export --format ctranslate2` (or `write_ctranslate2`).
        device: "cpu", "cuda" or "auto".
        compute_type: CTranslate2's ("default": the type the weights were saved in; "int8",
            "int8_float32", "float16", ... quantize when loading).
        intra_threads: threads per translation (0: the engine's default).
        target_language: a multilingual model's language (default: the export's).
    """

    def __init__(self, directory, device="cpu", compute_type="default", intra_threads=0,
                 inter_threads=1, target_language=None):
        ctranslate2 = require_ctranslate2()
        import sentencepiece as spm

        self.directory = Path(directory)
        engine_file = self.directory / ENGINE_FILE
        if not engine_file.exists():
            raise FileNotFoundError(f"{self.directory} holds no CTranslate2 export of ours "
                                    f"({ENGINE_FILE} is missing)")
        self.settings = json.loads(engine_file.read_text())
        self.max_length = int(self.settings["max_length"])
        self.alpha = float(self.settings.get("alpha", ALPHA))
        known = self.settings.get("language_tokens", [])
        language = target_language or self.settings.get("target_language")
        if known and f">>{language}<<" not in known:
            raise ValueError(f"this model translates into {len(known)} languages: choose one "
                             f"with --target-language ({', '.join(t[2:-2] for t in known)}); "
                             f"got {language!r}")
        if not known and target_language:
            raise ValueError(f"{self.directory} translates into one language only: leave out "
                             "--target-language")
        # a multilingual model's target-language piece, first in every source
        self.source_prefix = [f">>{language}<<"] if known else []
        # pieces kept per source: room for [END], [START] and the prefix where the model has them
        self.source_budget = (self.max_length - 1 - len(self.source_prefix)
                              - int(self.settings.get("source_start_token", True)))
        self.source_processor = spm.SentencePieceProcessor(
            model_file=str(self.directory / SOURCE_SPM))
        self.target_processor = spm.SentencePieceProcessor(
            model_file=str(self.directory / TARGET_SPM))
        self.engine = ctranslate2.Translator(str(self.directory), device=device,
                                             compute_type=compute_type,
                                             intra_threads=intra_threads,
                                             inter_threads=inter_threads)

    def source_pieces(self, sentences):
        """list[str] -> the pieces of each sentence, cut as `TextPath` cuts them.

        Text is encoded to UTF-8 first (a lone surrogate keeps its bytes), so every invalid byte
        reads as U+FFFD, an [UNK] piece, as in the graph. Pieces are read from SentencePiece's
        ids, as the graph reads them: text the model does not know is its unknown piece, not
        the text itself (which a vocabulary holding pieces of both languages might know)."""
        return [self.source_prefix + pieces
                for pieces in _pieces(self.source_processor, sentences, self.source_budget)]

    def target_pieces(self, sentences):
        """list[str] -> the pieces of each target, cut at max_length - 1 as `TextPath.target_ids`
        cuts them (read from SentencePiece's ids, as `source_pieces`)."""
        return _pieces(self.target_processor, sentences, self.max_length - 1)

    def score(self, sources, targets, alpha=None, batch_size=None):
        """Forced decoding with the engine's `score_batch`: a `scoring.PairScore` per pair, as
        `Translator.score` answers (alpha: the export's by default)."""
        from keras_transformer.generation.scoring import PairScore

        sources, targets = list(sources), list(targets)
        if len(sources) != len(targets):
            raise ValueError(f"{len(sources)} sources but {len(targets)} targets")
        alpha = self.alpha if alpha is None else float(alpha)
        if not sources:
            return []
        results = self.engine.score_batch(self.source_pieces(sources), self.target_pieces(targets),
                                          max_batch_size=batch_size or BATCH_ROWS,
                                          max_input_length=0)
        return [PairScore.of(result.log_probs, alpha) for result in results]

    def _options(self, search, options):
        options = dict(options)
        common = {"max_decoding_length": self.max_length, "max_input_length": 0,
                  "min_decoding_length": 0,  # ours may end at once; the engine says 1
                  "no_repeat_ngram_size": int(options.pop("no_repeat_ngram", 0) or 0)}
        if search == "greedy":
            chosen = {"beam_size": 1}
        elif search == "beam":
            k = int(options.pop("beam_size", BEAM_SIZE))
            options.pop("alpha", None)
            # all K finished hypotheses with their summed log-probabilities, ranked here
            chosen = {"beam_size": k, "num_hypotheses": k, "length_penalty": 0.0,
                      "return_scores": True, "return_end_token": True}
        elif search == "sample":
            top_k = options.pop("top_k", None)
            top_p = options.pop("top_p", None)
            seed = options.pop("seed", None)
            if seed is not None:
                require_ctranslate2().set_random_seed(int(seed))
            chosen = {"beam_size": 1, "sampling_temperature": float(options.pop("temperature", 1.0)),
                      "sampling_topk": int(top_k) if top_k else 0,
                      "sampling_topp": float(top_p) if top_p else 1.0}
        else:
            raise ValueError(f"unknown search {search!r}; choose from {SEARCHES}")
        if options:
            raise TypeError(f"unknown options for {search}: {sorted(options)}")
        return {**common, **chosen}

    def _ranked(self, result, alpha):
        """(score, pieces) of a beam result's hypotheses, best first by the GNMT score."""
        ranked = []
        for pieces, log_prob in zip(result.hypotheses, result.scores):
            length = len(pieces)  # [END] included (return_end_token), as in decoding
            ranked.append((gnmt_score(log_prob, length, alpha), pieces))
        ranked.sort(key=lambda pair: -pair[0])
        return ranked

    def _decode(self, sentences, search, batch_size, options, prefixes=None):
        """Per sentence: None (no piece: translated as "") or the engine's result."""
        alpha = float(options.get("alpha", self.alpha)) if search == "beam" else None
        settings = self._options(search, options)
        pieces = self.source_pieces(list(sentences))
        wordful = [i for i, p in enumerate(pieces) if len(p) > len(self.source_prefix)]
        results = [None] * len(pieces)
        if prefixes is not None:
            if len(prefixes) != len(pieces):
                raise ValueError(f"{len(pieces)} sentences but {len(prefixes)} prefixes")
            forced = self.target_pieces(list(prefixes))
            settings["target_prefix"] = [forced[i] or None for i in wordful]
        if wordful:
            translated = self.engine.translate_batch(
                [pieces[i] for i in wordful], max_batch_size=batch_size or 64, **settings)
            for i, result in zip(wordful, translated):
                results[i] = result
        return results, alpha

    def translate(self, sentences, search="greedy", batch_size=None, prefixes=None, **options):
        """list[str] -> list[str]; `prefixes` and `options` as `Translator.translate` takes them
        (a prefix is the engine's target_prefix)."""
        results, alpha = self._decode(sentences, search, batch_size, options, prefixes)
        texts = []
        for result in results:
            if result is None:
                texts.append("")
            elif search == "beam":
                texts.append(detokenize_pieces(self._ranked(result, alpha)[0][1]))
            else:
                texts.append(detokenize_pieces(result.hypotheses[0]))
        return texts

    def translate_nbest(self, sentences, n=BEAM_SIZE, batch_size=None, **options):
        """Beam search's `n` best of each sentence: list[list[(score, text)]], best first, as
        `Translator.translate_nbest` (a sentence with no piece: n times (0.0, ""))."""
        options = {"beam_size": max(n, options.pop("beam_size", n)), **options}
        if not 1 <= n <= options["beam_size"]:
            raise ValueError(f"n-best must be between 1 and the beam size, got {n}")
        results, alpha = self._decode(sentences, "beam", batch_size, options)
        answers = []
        for result in results:
            if result is None:
                answers.append([(0.0, "")] * n)
            else:
                answers.append([(float(score), detokenize_pieces(pieces))
                                for score, pieces in self._ranked(result, alpha)[:n]])
        return answers

