"""The GPU figures in one prepared run (JAX backend): matmul peak, base and big training
throughput and MFU, ours vs keras-hub, a profile of one step, cached greedy decode.

Made for one call on a lent GPU machine that has JAX but neither TensorFlow nor Keras
(`benchmarks/gpu/gpu_suite.sh` installs the carried Keras / keras-hub wheels and runs this with
KERAS_BACKEND=jax). Every section is in its own try/except and the whole run keeps to a time
budget (--budget seconds): a section that no longer fits is skipped and says so.

Sections, in order (a module each, beside this file; harness.py holds what they share and
report.py writes the tables):
  matmul   an n^3 bf16 matmul (n = --matmul-size, 8192): the practical peak of this device
  base     `base` preset, mixed_bfloat16, shared vocabulary (--vocab-size 37000), batch x length
           synthetic tokens (default 512 x 64: ~24.6k non-padding target tokens per batch, the
           paper's ~25k), ours vs keras-hub's layers of identical shape on the same batches,
           plus candidates for ours (--candidates), each timed as a whole step: the former
           float32 output projection and log-softmax loss (what the fused loss replaced), no
           dropout on the attention weights (training then attends by the fused kernel,
           cuDNN flash attention), dropout 0, dropout bits from XLA's rbg generator instead of
           Threefry (candidates.py)
  profile  ours, base: forward+loss, forward+backward, the whole step, the optimizer alone,
           the output projection + loss alone (the former f32 form; ours: bf16 logits and
           the fused chunked loss; bf16 logits cast to f32 + logsumexp loss), the
           host gap (a step that waits for its loss before the next is dispatched); analytic
           FLOP shares
  decode   cached greedy decode, base preset, batch 1 and 64, 128 tokens, source length 32:
           ours (greedy_decode) vs keras-hub's GreedySampler over its cached decoder
  big      `big` preset, as `base` (ours vs keras-hub), if it fits
  trace    a jax.profiler trace of 3 steps of ours, base: device time by part of the model
           (attention, feed-forward, norms, output projection, loss, dropout, optimizer) and
           kernel kind, mapped through the compiled HLO (saved as ours_step.hlo.txt.gz)

Timing: every jitted function is lowered first (Python tracing), then the XLA compiles of a
section run concurrently in threads (compile time is reported per function, overlapping);
steady state is measured after warm-up in rounds with the variants in rotating order, each
sample `--steps` steps dispatched back to back (the state of one step feeds the next, as in
training) and waited for at the end. Ratios are medians of per-round ratios.

MFU = model FLOPs per step (common/flops.py: matmuls on padded shapes, forward x 3) / step
time / datasheet dense bf16 peak (989 TFLOP/s for H100 SXM and H200; --peak-tflops overrides),
and the same against the matmul of the first section.

    bash benchmarks/gpu/gpu_suite.sh                                # on the GPU machine (writes $OUT)
    KERAS_BACKEND=jax python benchmarks/gpu/gpu_suite.py --smoke    # a tiny CPU rehearsal (~1-2 min)
"""

import argparse
import datetime
import gc
import os
import sys
import threading
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for `import common`
import report  # noqa: E402  (this folder: python puts a script's folder on sys.path)
from cached_decode import decode_lowerings, decode_section  # noqa: E402
from candidates import CANDIDATES  # noqa: E402
from common import device  # noqa: E402
from harness import Budget, device_facts, log  # noqa: E402
from matmul_peak import matmul_section  # noqa: E402
from step_profile import profile_lowerings, profile_section  # noqa: E402
from step_trace import trace_section  # noqa: E402
from training_mfu import train_section  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="base")
    parser.add_argument("--big-preset", default="big", help="'' skips the big section")
    parser.add_argument("--vocab-size", type=int, default=37000, help="shared vocabulary")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--length", type=int, default=64, help="padded source = target length")
    parser.add_argument("--big-batch", type=int, default=None, help="default: --batch")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed sample")
    parser.add_argument("--rounds", type=int, default=5, help="timed samples per variant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per variant")
    parser.add_argument("--matmul-size", type=int, default=8192)
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="datasheet dense bf16 peak; default from the device name")
    parser.add_argument("--decode-batches", default="1,64")
    parser.add_argument("--decode-length", type=int, default=128)
    parser.add_argument("--source-length", type=int, default=32, help="decode source length")
    parser.add_argument("--sections", default="matmul,base,profile,decode,big,trace")
    parser.add_argument("--candidates",
                        default="f32_logits,attention_dropout0,no_dropout,rbg_dropout",
                        help="changes to ours timed as whole base steps; parts joined with +: "
                             + ", ".join(CANDIDATES))
    parser.add_argument("--decode-rounds", type=int, default=5)
    parser.add_argument("--skip-decode-checks", action="store_true",
                        help="skip comparing decoded tokens with a full forward pass")
    parser.add_argument("--budget", type=float, default=420.0,
                        help="seconds for the whole run; sections that no longer fit are skipped")
    parser.add_argument("--hard-limit", type=float, default=None,
                        help="seconds after which a watchdog writes what was measured and exits "
                             "(default: budget + 60)")
    parser.add_argument("--compile-threads", type=int, default=6)
    parser.add_argument("--out", default=os.environ.get("OUT") or None,
                        help="folder for gpu_suite.md / .json / the trace (default $OUT)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes for a CPU rehearsal (tiny/small presets, vocab 1000, ...)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.smoke:
        args.preset, args.big_preset = "tiny", "small"
        args.vocab_size, args.batch, args.length = 1000, 8, 16
        args.steps, args.rounds, args.warmup = 2, 2, 1
        args.matmul_size, args.decode_length, args.source_length = 256, 8, 8
        args.decode_batches = "1,4"
    return args


class Suite:
    """One run: its options, time budget and results (saved after every section), and what the
    base section leaves for the ones after it (its models and trainers, the profile's and the
    decode's compiled functions)."""

    def __init__(self, args):
        self.args, self.budget = args, Budget(args.budget)
        self.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
        self.results = dict(
            date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            machine=device.machine_line(), args=vars(args), section_errors={}, skipped=[])
        self.results["device"] = device_facts(args.peak_tflops)
        self.context = {}  # of base: models, trainers, batches, config, compiled extras
        self.base_section = None
        self.profile_inputs, self.profile_errors = None, {}
        self.decode_info, self.decode_errors = None, {}

    def wants(self, name):
        return name in self.sections

    def run(self, name, function, min_seconds):
        """`function()` unless fewer than `min_seconds` are left; an error ends the section,
        not the run; the results are saved either way."""
        budget = self.budget
        if budget.left() < min_seconds:
            self.results["skipped"].append(
                f"{name} ({budget.left():.0f} s left < {min_seconds} s)")
            log(f"== {name}: skipped, {budget.left():.0f} s left")
            return None
        try:
            return function()
        except Exception as error:  # noqa: BLE001
            self.results["section_errors"][name] = repr(error)[:500]
            traceback.print_exc()
            return None
        finally:
            self.results["total_s"] = budget.elapsed()
            report.save(self.results, self.args)

    def run_all(self):
        if self.wants("matmul"):
            self.run("matmul", lambda: matmul_section(self.args, self.budget, self.results), 5)
        if self.wants("base"):
            self.run("base", self.base, 60)
        if self.wants("profile") and self.has_ours() and self.profile_inputs is not None:
            self.run("profile", self.profile, 45)
        if self.wants("decode") and self.decode_info is not None:
            self.run("decode", self.decode, 30)
        trace_trainer = self.release_base()
        if self.args.big_preset and self.wants("big"):
            self.run("big", self.big, 100)
        if self.wants("trace") and trace_trainer is not None:
            self.run("trace", lambda: trace_section(trace_trainer, self.budget, self.results,
                                                    self.args.out), 15)

    def has_ours(self):
        return "ours" in self.context.get("trainers", {})

    def base(self):
        args = self.args
        candidates = [c.strip() for c in args.candidates.split(",") if c.strip()]
        section, self.context = train_section(
            "base", args.preset, args.batch, args, self.budget, self.results,
            candidates=candidates, extra_lowerings=self.extra_lowerings)
        log(report.section_line(section))
        self.base_section = section

    def extra_lowerings(self, models, states, batches):
        """The profile and decode functions, lowered now to compile with the base models."""
        lowered = {}
        self.profile_errors, self.decode_errors = {}, {}
        if self.wants("profile") and "ours" in models:
            low, self.profile_inputs = profile_lowerings(
                models["ours"], states["ours"], batches[0], self.profile_errors)
            lowered.update(low)
        if self.wants("decode"):
            low, self.decode_info = decode_lowerings(self.args, self.decode_errors)
            lowered.update(low)
        return lowered

    def profile(self):
        section = profile_section(self.context, self.profile_inputs, self.profile_errors,
                                  self.args, self.budget, self.results, self.base_section)
        log("== profile: " + ", ".join(f"{k} {v['ms']:.2f} ms" for k, v in
                                       section["parts"].items() if "ms" in v)
            + f"  [{self.budget.elapsed():.0f} s]")

    def decode(self):
        decode_section(self.context.get("compiled", {}), self.decode_info, self.decode_errors,
                       self.args, self.budget, self.results)

    def release_base(self):
        """Free all but ours' base trainer (the trace's) before the big models; returns it."""
        trace_trainer = self.context.get("trainers", {}).get("ours")
        self.context.clear()
        self.decode_info = self.profile_inputs = None
        gc.collect()
        return trace_trainer

    def big(self):
        args = self.args
        section, context = train_section("big", args.big_preset, args.big_batch or args.batch,
                                         args, self.budget, self.results)
        log(report.section_line(section))
        context.clear()
        gc.collect()

    def finish(self):
        self.results["total_s"] = self.budget.elapsed()
        report.save(self.results, self.args, final=True)
        log("\n" + "=" * 100 + "\n" + report.report(self.results, self.args))


def start_watchdog(seconds, suite):
    """After `seconds`, write and print whatever was measured, then end the process: a compile
    or a step that hangs must not take the whole device call with it."""
    results, args, budget = suite.results, suite.args, suite.budget

    def fire():
        results["watchdog"] = f"stopped after {budget.elapsed():.0f} s (hard limit {seconds:.0f} s)"
        results["total_s"] = budget.elapsed()
        try:
            report.save(results, args, final=True)
            log("\n" + "=" * 100 + "\nWATCHDOG: " + results["watchdog"] + "\n"
                + report.report(results, args))
        finally:
            sys.stdout.flush()
            os._exit(3)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


def main(argv=None):
    args = parse_args(argv)
    if device.backend() != "jax":
        raise SystemExit("gpu_suite.py runs on the JAX backend: KERAS_BACKEND=jax")
    suite = Suite(args)
    log(suite.results["machine"])
    log(f"device {suite.results['device']}")
    device.set_precision("bfloat16")
    start_watchdog(args.hard_limit or args.budget + 60, suite)
    suite.run_all()
    suite.finish()


if __name__ == "__main__":
    main()
