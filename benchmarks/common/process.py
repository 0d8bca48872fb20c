"""Child processes, the host, and the command that reproduces a run (no Keras imported here)."""

import argparse
import importlib.metadata
import os
import platform
import shlex
import sys
from pathlib import Path

from common import ROOT


def child_env(**extra):
    """The environment of a child process that imports the project from this checkout:
    PYTHONPATH starts with the repository root, output is unbuffered; TensorFlow's C++ log is
    left at the package's default (none of its lines: a user's run shows what ours shows), or
    what TF_CPP_MIN_LOG_LEVEL says when set; `extra` is set last."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def cpu_name():
    """The CPU's model name (/proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average():
    """The 1-minute load average, rounded to 0.01; None where the system has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def host_line(packages=(), load=True):
    """'keras 3.15.1; ...; 2 CPUs (AMD EPYC 7B13); load avg 1.4': the installed versions of
    `packages` (read from their metadata, not imported), the CPUs and (with `load`) the load."""
    parts = []
    for package in packages:
        try:
            parts.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    parts.append(f"{os.cpu_count()} CPUs ({cpu_name()})")
    average = load_average() if load else None
    if average is not None:
        parts.append(f"load avg {average:.1f}")
    return "; ".join(parts)


def backend_prefix():
    """'KERAS_BACKEND=jax ' where the run's Keras backend is not TensorFlow, else ''. The
    backend is Keras's where Keras is loaded, else the environment's."""
    keras = sys.modules.get("keras")
    name = (keras.backend.backend() if keras is not None
            else os.environ.get("KERAS_BACKEND", "tensorflow"))
    return "" if name == "tensorflow" else f"KERAS_BACKEND={name} "


def reproduce_line(script, args, positional=(), skip=(), defaults=None):
    """'python benchmarks/<folder>/<script>.py ARG --flag value ...': the command of this run.

    script: the script's `__file__`. args: its argparse namespace. `positional` names the
    arguments written first, bare; every other option is written as a flag (True: the flag
    alone; False and None: left out; a list: its items as words), except those in `skip` and,
    given `defaults` (the parser's defaults, a namespace or dict), those still at their
    default. Values are shell-quoted; numbers are written as short as they read back."""
    if isinstance(defaults, argparse.Namespace):
        defaults = vars(defaults)
    defaults = defaults or {}
    values = vars(args)
    words = ["python", Path(script).resolve().relative_to(ROOT).as_posix()]
    words += [_word(values[name]) for name in positional]
    for key, value in values.items():
        if (key in positional or key in skip or value is None or value is False
                or (key in defaults and value == defaults[key])):
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            words.append(flag)
        elif isinstance(value, (list, tuple)):
            words += [flag] + [_word(item) for item in value]
        else:
            words += [flag, _word(value)]
    return backend_prefix() + " ".join(words)


def _word(value):
    if isinstance(value, float) and float(f"{value:g}") == value:
        value = f"{value:g}"
    return shlex.quote(str(value))
