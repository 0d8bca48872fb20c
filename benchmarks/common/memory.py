"""Memory probes: resident sets from /proc, and the accelerator's peak (a backend is imported
only by the accelerator probes)."""


def status_bytes(field, pid="self"):
    """A field of /proc/PID/status in bytes (VmRSS: resident now; VmHWM: the peak so far), or
    None where the process has none (it has exited and waits to be reaped). OSError where the
    process is gone."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def rss_bytes():
    """Current resident set size (VmRSS) of this process, bytes."""
    return status_bytes("VmRSS")


def peak_rss_bytes():
    """Peak resident set size (VmHWM) of this process since it started."""
    return status_bytes("VmHWM")


def jax_peak_bytes():
    """Peak bytes in use on JAX's first device so far (JAX has no reset), or None where the
    device keeps no statistics (a CPU)."""
    import jax
    try:
        return (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use")
    except Exception:  # noqa: BLE001  (a device without statistics)
        return None


def device_memory():
    """(reset, peak) callables for accelerator memory, or None on CPU."""
    from common.device import backend, has_gpu
    if not has_gpu():
        return None
    if backend() == "tensorflow":
        import tensorflow as tf
        return (lambda: tf.config.experimental.reset_memory_stats("GPU:0"),
                lambda: tf.config.experimental.get_memory_info("GPU:0")["peak"])
    if backend() == "jax":
        # no reset: report the peak seen so far (run configurations in ascending size)
        return (lambda: None, lambda: jax_peak_bytes() or 0)
    return None
