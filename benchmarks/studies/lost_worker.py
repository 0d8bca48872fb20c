"""How long the survivor of a two-worker run takes to stop when the other worker is lost.

Starts two `--strategy multi_worker` workers on loopback ports (tiny model, the grammar's pairs),
waits for the first epoch to end, then sends SIGKILL (the worker is gone) or SIGSTOP (it hangs and
sends nothing more) to one of them, and times the other's exit. Prints the exit status, the seconds
and the survivor's error line, then the command that reproduces it.

    python benchmarks/studies/lost_worker.py --signal KILL --victim 1
"""

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for `import common`
from common import ROOT, process  # noqa: E402


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signal", choices=("KILL", "STOP"), default="KILL")
    parser.add_argument("--victim", type=int, choices=(0, 1), default=1,
                        help="the worker to lose (0 is the chief)")
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--steps-per-epoch", type=int, default=40)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from pipelines.default_data import generate_pairs

    folder = Path(tempfile.mkdtemp(prefix="lost_worker_"))
    data = folder / "pairs.tsv"
    data.write_text("".join(f"{s}\t{t}\n" for s, t in generate_pairs(args.pairs, seed=3)),
                    encoding="utf-8")
    out = folder / "run"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    command = [sys.executable, "-m", "keras_transformer", "train", "--data", str(data),
               "--preset", "tiny", "--vocab-size", "300", "--batch-tokens", "1024",
               "--steps-per-epoch", str(args.steps_per_epoch), "--bleu-sentences", "20",
               "--epochs", "4", "--examples", "0", "--strategy", "multi_worker", "--out", str(out)]
    logs = [folder / f"worker{index}.log" for index in range(2)]
    workers = []
    for index, log in enumerate(logs):
        with open(log, "w") as file:
            config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
            workers.append(subprocess.Popen(command, cwd=ROOT, stdout=file,
                                            stderr=subprocess.STDOUT,
                                            env=process.child_env(TF_CONFIG=json.dumps(config))))
    victim, survivor = workers[args.victim], workers[1 - args.victim]
    history = out / "history.csv"
    try:
        deadline = time.monotonic() + 600
        while not (history.exists() and len(history.read_text().splitlines()) >= 2):
            if time.monotonic() > deadline or survivor.poll() is not None:
                raise SystemExit(f"the first epoch did not end; see {logs[0]}")
            time.sleep(0.5)
        time.sleep(3)  # into the second epoch
        victim.send_signal(getattr(signal, f"SIG{args.signal}"))
        lost = time.monotonic()
        try:
            code = survivor.wait(timeout=300)
        except subprocess.TimeoutExpired:
            code = None
        waited = time.monotonic() - lost
    finally:
        for worker in workers:
            worker.kill()
    error = [line for line in logs[1 - args.victim].read_text().splitlines()
             if line.startswith("error:")]
    print(f"SIG{args.signal} to worker {args.victim}: worker {1 - args.victim} "
          + (f"exited with status {code} after {waited:.1f} s" if code is not None
             else f"was still running {waited:.0f} s later"))
    print(error[0][:400] if error else "(no error line)")
    print(f"logs: {folder}")
    print("reproduce: " + process.reproduce_line(__file__, args))


if __name__ == "__main__":
    main()
