"""Shared fixtures: tiny configurations, and what several test modules read but never change.

Session fixtures, made once per run and read-only (a test that changes one copies it first):
    trained_run  a run directory trained by the train job for a few seconds (tiny model, the
                 embedded grammar as a TSV, beam alpha tuned, the last 3 checkpoints kept);
                 made once for both xdist workers (`made_once`), so any file may read it
    copy_task    a tiny model trained to copy sentences of 16 words, with its text path: its
                 outputs depend on every source token, so parity with it means something;
                 also made once (each worker loads it)
"""

import dataclasses
import os
import pickle
import shutil
from pathlib import Path

from filelock import FileLock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_transformer import build_transformer, preset  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER") and keras.backend.backend() == "tensorflow":
    # one thread an op in each of the two workers on two cores: tiny models gain nothing from a
    # second thread, and two workers' pools contending cost the suite (the embedded recipe's
    # intra_op_threads=1 for the same reason)
    import tensorflow as tf  # noqa: E402

    tf.config.threading.set_intra_op_parallelism_threads(1)

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT.parent / "shared" / "corpora"
needs_corpora = pytest.mark.skipif(not CORPORA.is_dir(), reason="../shared/corpora is not here")


def project_env(**extra):
    """The environment of a child process that imports the project from this checkout."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


@pytest.fixture(autouse=True)
def _float32_policy_and_seed():
    """Every test starts from float32 and a fixed seed, whatever the last one set."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def tiny_config():
    return preset("tiny", source_vocab_size=41, target_vocab_size=43)


@pytest.fixture
def tiny_model(tiny_config):
    return build_transformer(tiny_config)


def random_tokens(rng, batch, length, vocab_size, low=4):
    """(batch, length) int32 tokens in [low, vocab_size): no padding, no reserved ids."""
    return rng.integers(low, vocab_size, size=(batch, length)).astype("int32")


def write_pairs(path, pairs):
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


def shared_folder(tmp_path_factory, name):
    """The folder `made_once(tmp_path_factory, name, ...)` makes: one for all xdist workers."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder, above each worker's own
    return root / name


def made_once(tmp_path_factory, name, make):
    """`make(folder)`'s (picklable) result, made once per test session in a folder of its own:
    under xdist the first worker to ask makes it while the others wait on a file lock, then
    they all read the same folder (so paths recorded in it hold on every worker)."""
    folder = shared_folder(tmp_path_factory, name)
    root, made = folder.parent, folder.parent / f"{name}.made.pickle"
    with FileLock(str(root / f"{name}.lock")):
        if made.exists():
            return pickle.loads(made.read_bytes())
        shutil.rmtree(folder, ignore_errors=True)  # a half-made one whose maker failed
        folder.mkdir()
        value = make(folder)
        made.write_bytes(pickle.dumps(value))
        return value


@pytest.fixture(scope="session")
def small_tsv(tmp_path_factory):
    """3,000 pairs of the embedded grammar as a TSV (what a user's --data looks like)."""
    from pipelines.default_data import generate_pairs

    return made_once(tmp_path_factory, "data", lambda folder: write_pairs(
        folder / "pairs.tsv", generate_pairs(3000, seed=3)))


@pytest.fixture(scope="session")
def held_out(tmp_path_factory):
    """20-pair validation and test TSVs of the grammar (seeds of their own): what throwaway
    train jobs validate and report on, so they do not translate hundreds of sentences."""
    from pipelines.default_data import generate_pairs

    def make(folder):
        return {"validation_data": str(write_pairs(folder / "dev.tsv", generate_pairs(20, seed=91))),
                "test_data": str(write_pairs(folder / "test.tsv", generate_pairs(20, seed=92)))}

    return made_once(tmp_path_factory, "held_out", make)


def tiny_settings(data, **changes):
    from keras_transformer.training.settings import TrainSettings

    values = dict(data=str(data), preset="tiny", vocab_size=300, batch_tokens=1024,
                  warmup_steps=100, learning_rate_scale=0.5, epochs=6, seed=0, steps_per_epoch=0,
                  bleu_sentences=100, tune_alpha=False, overrides={"max_length": 64},
                  mixed_precision="float32")  # the same arithmetic on every CI machine
    return TrainSettings(**{**values, **changes})


def quiet(*args):
    return None


# one encoder and one decoder block: every test that loads, traces, exports or converts the run
# does it twice as fast (the copy task's model keeps two)
TRAINED_RUN = dict(tune_alpha=True, keep_checkpoints=3, bleu_sentences=20,
                   overrides={"max_length": 64, "num_layers": 1})


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, small_tsv, held_out):
    """(run directory, report): a run (one block) trained by the train job for a few seconds,
    enough for translations that differ by sentence; 20 validation and 20 test pairs. Read-only: copy it
    (`copy_run`) to change it. Its settings: `tiny_settings(small_tsv, **TRAINED_RUN, **held_out)`."""
    from keras_transformer.training.job import train

    def make(folder):
        out = folder / "tiny"
        report = train(tiny_settings(small_tsv, **TRAINED_RUN, **held_out), out, examples=0,
                       verbose=0, log=quiet)
        return out, report

    made = made_once(tmp_path_factory, "runs", make)
    keras.config.set_dtype_policy("float32")
    return made


def copy_run(run, to):
    """A copy of a run directory to change."""
    shutil.copytree(run, to)
    return to


COPY_WORDS = ["casa", "perro", "él", "niño", "über", "café", "día", "año", "qué", "sí",
              "mañana", "corazón", "sol", "luna", "mar", "río"]


@dataclasses.dataclass
class CopyTask:
    """A tiny model trained to copy sentences of `COPY_WORDS` (one SentencePiece piece each)."""

    model: object
    text_path: object
    word_ids: list
    max_length: int

    @property
    def vocab_size(self):
        return self.text_path.source_tokenizer.vocab_size

    def sentences(self, count, seed=0, longest=None):
        """Sentences of 1 to `longest` words (default max_length + 2: some are truncated)."""
        rng = np.random.default_rng(seed)
        longest = longest or self.max_length + 2
        return [" ".join(rng.choice(COPY_WORDS, size=size))
                for size in rng.integers(1, longest + 1, size=count)]

    def source_ids(self, rng, batch, length):
        """(batch, length) int32 ids of words, no padding, no [START]/[END]."""
        return rng.choice(self.word_ids, size=(batch, length)).astype("int32")


@pytest.fixture(scope="session")
def copy_task(tmp_path_factory):
    """A `CopyTask`, trained in ~5 s (plain Adam), once for both workers (`made_once`; each
    loads it). Read-only: nothing may train it further."""
    from pipelines.text_path import TextPath
    from pipelines.tokenizers import SentencePieceTokenizer

    word_ids, length = made_once(tmp_path_factory, "copy_task", _train_copy_task)
    folder = shared_folder(tmp_path_factory, "copy_task")
    tokenizer = SentencePieceTokenizer.load(folder / "words.model")
    model = keras.models.load_model(folder / "model.keras", compile=False)
    keras.config.set_dtype_policy("float32")
    return CopyTask(model, TextPath(tokenizer, tokenizer, length), word_ids, length)


def _train_copy_task(folder):
    """Trains the copy task's model and tokenizer into `folder`; (word ids, max_length)."""
    from keras_transformer.training.loss import MaskedSparseCrossEntropy
    from pipelines.special_tokens import END_ID, START_ID
    from pipelines.tokenizers import learn_tokenizer

    rng = np.random.default_rng(0)
    tokenizer = learn_tokenizer([" ".join(rng.permutation(COPY_WORDS)) for _ in range(200)], 64)
    word_ids = [ids[0] for ids in tokenizer.tokenize(COPY_WORDS).to_list()]
    assert len(set(word_ids)) == len(COPY_WORDS)  # a piece a word
    length = 12
    keras.utils.set_random_seed(0)
    config = preset("tiny", source_vocab_size=tokenizer.vocab_size,
                    target_vocab_size=tokenizer.vocab_size, max_length=length)
    model = build_transformer(config)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=MaskedSparseCrossEntropy(0.0),
                  jit_compile=False)
    ids = np.zeros((1024, length + 1), "int32")  # [START] w ... [END] 0 ...
    for row, size in enumerate(rng.integers(1, length - 1, size=len(ids))):
        ids[row, :size + 2] = [START_ID, *rng.choice(word_ids, size), END_ID]
    model.fit([ids[:, :-1], ids[:, :-2]], ids[:, 1:-1], batch_size=32, epochs=8, verbose=0)
    model.save(folder / "model.keras")
    tokenizer.save(folder / "words.model")
    return [int(i) for i in word_ids], length


MARIAN = ROOT.parent / "shared" / "marian" / "opus-mt-en-mg"


@dataclasses.dataclass
class MarianFiles:
    """What a Marian model has besides its weights: the vocabulary (pieces in the model's id
    order, `</s>` 0 and `<unk>` 1, no `<pad>`) and the two SentencePiece models."""

    vocabulary: list
    source_spm: bytes
    target_spm: bytes
    real: bool  # the real OPUS-MT en-mg files, or made here


def marian_files() -> MarianFiles:
    """The real OPUS-MT en-mg model's vocabulary and SentencePiece models (../shared/marian), or,
    where they are absent, files of the same kind made here: SentencePiece models learned with
    Marian's settings (<unk> 0, <s> 1, </s> 2) on the grammar's English and Spanish, and one
    vocabulary of both in a shuffled order that leaves some source pieces out (unknown)."""
    import json

    if MARIAN.is_dir():
        table = json.loads((MARIAN / "vocab.json").read_text(encoding="utf-8"))
        vocabulary = [piece for piece, _ in sorted(table.items(), key=lambda item: item[1])
                      if piece != "<pad>"]
        return MarianFiles(vocabulary, (MARIAN / "source.spm").read_bytes(),
                           (MARIAN / "target.spm").read_bytes(), True)
    import io

    import sentencepiece as spm

    from pipelines.default_data import generate_pairs

    pairs = generate_pairs(2000, seed=11)
    models = []
    for side in (0, 1):
        written = io.BytesIO()
        spm.SentencePieceTrainer.train(sentence_iterator=iter([p[side] for p in pairs]),
                                       model_writer=written, vocab_size=300, minloglevel=2)
        models.append(written.getvalue())
    pieces = set()
    for i, model in enumerate(models):
        processor = spm.SentencePieceProcessor(model_proto=model)
        kept = [processor.id_to_piece(j) for j in range(3, processor.get_piece_size())]
        if i == 0:  # every 7th source piece left out of the vocabulary: read as <unk>
            kept = [piece for j, piece in enumerate(kept) if j % 7]
        pieces.update(kept)
    rest = sorted(pieces)
    np.random.default_rng(0).shuffle(rest)
    return MarianFiles(["</s>", "<unk>", *rest], models[0], models[1], False)


TOKENS = {0: "[PAD]", 1: "[UNK]", 2: "[START]", 3: "[END]", 5: "<b>", 6: "&amp;", 7: "él"}


@pytest.fixture(scope="session")
def attention_maps():
    """(AttentionMaps, the raw greedy_decode_with_attention result) of an untrained tiny
    model on one sentence; some tokens need escaping in HTML."""
    from keras_transformer.generation import decoding
    from keras_transformer.generation.attention_maps import AttentionMaps

    keras.utils.set_random_seed(3)
    model = build_transformer(preset("tiny", source_vocab_size=20, target_vocab_size=20))
    source = np.array([[2, 5, 6, 7, 8, 3]], "int32")
    decoded = decoding.greedy_decode_with_attention(model, source, 7)

    def token(i):
        return TOKENS.get(i, f"w{i}")

    maps = AttentionMaps.from_decoding("<b> &amp; él w8", source[0], decoded, token, token)
    return maps, decoded


# files that share a worker (and so its session fixtures)
SHARED_GROUPS = {"test_translator.py": "copy_task", "test_decoding.py": "copy_task"}
# the groups that take longest (12-80 s each on 2 cores, measured with --durations=0), handed
# out first in this order so that the two workers finish together (xdist gives a worker the next
# group as it runs dry); the first two need nothing the other makes, so neither waits on the
# other's lock; the rest follow in collection order
LONGEST_FIRST = ["test_cli.py", "test_jax.py", "copy_task", "test_saved_model_tflite.py",
                 "test_documented_commands.py", "test_objective.py", "test_marian.py",
                 "test_resume.py", "test_distribution.py", "test_budget.py", "test_train_job.py",
                 "test_ctranslate2.py", "test_model.py", "test_batching.py"]


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """Groups for the two xdist workers (`--dist loadgroup --no-loadscope-reorder`): every file
    whole on one worker (its module fixtures are then made once), the longest groups first."""
    rank = {group: i for i, group in enumerate(LONGEST_FIRST)}
    for item in items:
        item.add_marker(pytest.mark.xdist_group(SHARED_GROUPS.get(item.path.name, item.path.name)))
    groups = [SHARED_GROUPS.get(item.path.name, item.path.name) for item in items]
    order = sorted(range(len(items)), key=lambda i: rank.get(groups[i], len(rank)))  # stable
    items[:] = [items[i] for i in order]
