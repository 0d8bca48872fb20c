"""What learning rate and warmup fine-tuning (`train --init-from`) should use: a run of the
embedded grammar fine-tuned on a changed grammar (nouns that translate as each other,
`pipelines.default_data.with_swapped_nouns`), at each schedule for the same number of steps.

For each --scales x --warmups: the swapped nouns translated the new way (recall on test
sentences that hold one), BLEU on the changed grammar, and BLEU on sentences of the old grammar
without a swapped noun (what fine-tuning should not forget). The base run is trained first with
the embedded recipe (about 4 minutes on 2 cores), or given with --base.

    python benchmarks/studies/fine_tuning.py
    python benchmarks/studies/fine_tuning.py --base runs/default --scales 0.1,0.3 --steps 100
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for `import common`
from common import process  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", help="a trained run of the embedded grammar (default: train one)")
    parser.add_argument("--scales", default="0.03,0.1,0.3,1.0",
                        help="learning_rate_scale values, comma-separated")
    parser.add_argument("--warmups", default="200", help="warmup_steps values, comma-separated")
    parser.add_argument("--steps", type=int, default=400, help="fine-tuning steps (2 epochs)")
    parser.add_argument("--pairs", type=int, default=20000, help="changed-grammar training pairs")
    parser.add_argument("--test", type=int, default=300, help="test sentences of each grammar")
    parser.add_argument("--base-epochs", type=int, default=None,
                        help="epochs of the base run (default: the recipe's)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from keras_transformer.generation.evaluation import score_translations
    from keras_transformer.generation.translator import Translator
    from keras_transformer.run_dir import RunDir
    from keras_transformer.training.job import train
    from keras_transformer.training.settings import TrainSettings
    from pipelines.default_data import (
        SWAPPED_NOUNS,
        generate_pairs,
        swapped_noun_recall,
        with_swapped_nouns,
    )

    def quiet(*_):
        return None

    print(f"# {process.host_line(('tensorflow', 'keras'))}")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        base = Path(args.base) if args.base else scratch / "base"
        if not args.base:
            began = time.perf_counter()
            train(TrainSettings(epochs=args.base_epochs), base, examples=0, verbose=0, log=quiet)
            print(f"base run: the embedded recipe, {time.perf_counter() - began:.0f} s")

        def write(name, pairs):
            path = scratch / name
            path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
            return path

        data = write("new.tsv", with_swapped_nouns(generate_pairs(args.pairs, seed=101)))
        dev = write("dev.tsv", with_swapped_nouns(generate_pairs(200, seed=102)))
        held = generate_pairs(20 * args.test, seed=103)
        changed = [pair for pair in with_swapped_nouns(held)
                   if any(word in pair[1] for word in SWAPPED_NOUNS)][:args.test]
        old = [pair for pair in held if not any(w in pair[1] for w in SWAPPED_NOUNS)][:args.test]

        def scores(run):
            model, text_path, _ = RunDir(run).load_trained()
            translate = Translator(model, text_path).translate
            new_out = translate([s for s, _ in changed])
            old_out = translate([s for s, _ in old])
            return (swapped_noun_recall(new_out, [t for _, t in changed]),
                    score_translations(new_out, [t for _, t in changed])["bleu"],
                    score_translations(old_out, [t for _, t in old])["bleu"])

        print("\n| learning_rate_scale | warmup | swapped nouns | BLEU, changed grammar | "
              "BLEU, old grammar | seconds |")
        print("|---|---|---|---|---|---|")
        recall, new_bleu, old_bleu = scores(base)
        print(f"| (base run) | - | {recall:.0%} | {new_bleu:.1f} | {old_bleu:.1f} | - |")
        for warmup in [int(w) for w in args.warmups.split(",")]:
            for scale in [float(x) for x in args.scales.split(",")]:
                out = scratch / f"tuned-{scale}-{warmup}"
                began = time.perf_counter()
                train(TrainSettings(
                    data=str(data), validation_data=str(dev), test_data=str(dev),
                    init_from=str(base), learning_rate_scale=scale, warmup_steps=warmup,
                    epochs=2, steps_per_epoch=args.steps // 2, batch_tokens=1024,
                    bleu_sentences=0, keep_best="val_loss", tune_alpha=False,
                    early_stopping=0, cooldown=0.5, mixed_precision="float32",
                    intra_op_threads=1), out, examples=0, verbose=0, log=quiet)
                seconds = time.perf_counter() - began
                recall, new_bleu, old_bleu = scores(out)
                print(f"| {scale:g} | {warmup} | {recall:.0%} | {new_bleu:.1f} | "
                      f"{old_bleu:.1f} | {seconds:.0f} |", flush=True)
    print("\nreproduce: " + process.reproduce_line(__file__, args, defaults=parse_args([])))


if __name__ == "__main__":
    main()
