"""The benchmark: every requested model against its plain twin, its ``keras.applications``
counterpart and the PyTorch reference, each group timed side by side in this process.

:func:`run` returns a JSON-ready dict; :mod:`eca_keras.benchmark.report` renders it.
"""

import dataclasses
import gc
import platform

import keras

from eca_keras.benchmark import memory, peak, timing, workloads
from eca_keras.benchmark.settings import Settings
from eca_keras.complexity import count_macs


def machine():
    """What the figures were measured on."""
    import tensorflow as tf

    info = {
        "processor": _cpu_name(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    try:
        import torch  # only its version: torch's dynamo (and triton) load with the rival

        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ratio(numerator, denominator):
    return round(numerator / denominator, 4) if numerator and denominator else None


class _Progress:
    def __init__(self, total, log):
        self.total, self.done, self.log = total, 0, log

    def __call__(self, message):
        self.done += 1
        self.log(f"[{self.done}/{self.total}] {message}")


def run(settings=None, log=print):
    """Measures everything ``settings`` asks for (default: :class:`Settings`'s defaults);
    returns the results as a JSON-ready dict."""
    settings = settings or Settings()
    workloads.check_backend()
    tf_threads = workloads.use_threads(settings.threads or workloads.cpu_threads())
    threads = {"tensorflow": tf_threads, "torch": settings.threads or tf_threads}
    groups = [
        (name, mode, batch, xla)
        for name in settings.models
        for mode in settings.modes
        for batch in settings.batch_sizes
        for xla in settings.xla
        if settings.twins
    ]
    torch_groups = [
        (name, mode, batch)
        for name in settings.models
        for mode in settings.modes
        for batch in settings.batch_sizes
        if settings.torch and name in workloads.torch_models()
    ]
    memory_runs = [
        (name, variant, batch, xla)
        for name in settings.models
        for variant in _variants(name, settings)
        for batch in settings.batch_sizes[-1:]
        for xla in [all(settings.xla)]  # graph mode if asked for: XLA compiling inflates the peak
        if settings.memory and "training" in settings.modes
    ]
    progress = _Progress(1 + len(groups) + len(torch_groups) + len(memory_runs), log)
    peak_gflops = peak.matmul_peak()
    progress(f"float32 matmul peak: {peak_gflops:.1f} GFLOP/s")
    results = {
        "machine": dict(machine(), threads=tf_threads),
        "settings": dataclasses.asdict(settings),
        "matmul_peak_gflops": round(peak_gflops, 1),
        "throughput": [],
        "torch": [],
        "memory": [],
    }
    for name, mode, batch, xla in groups:
        row = _keras_group(name, mode, batch, xla, settings, peak_gflops)
        results["throughput"].append(row)
        progress(_describe(row))
    for name, mode, batch in torch_groups:
        row = _torch_group(name, mode, batch, settings, threads)
        results["torch"].append(row)
        progress(_describe(row))
    for name, variant, batch, xla in memory_runs:
        size = workloads.input_size(name, settings.size)
        record = memory.training_peak_memory(name, variant, batch, size, xla)
        row = {"model": name, "variant": variant, "batch": batch, "size": size, "xla": xla}
        results["memory"].append({**row, **record})
        progress(
            f"training memory {name} ({variant}), batch {batch}: "
            f"{record['step_peak_mib']} MiB peak, the step adds {record['step_mib']} MiB"
        )
    return results


def _variants(name, settings):
    variants = ["eca", "plain"]
    if settings.keras_baselines and workloads.keras_baseline(name):
        variants.append("keras")
    return variants


def _keras_group(name, mode, batch, xla, settings, peak_gflops):
    size = workloads.input_size(name, settings.size)
    steps, macs = {}, None
    for variant in _variants(name, settings):
        model = workloads.build_keras(name, size, variant)
        if variant == "eca":
            macs = count_macs(model)
        steps[variant] = workloads.keras_step(model, mode, batch, xla)
    timings = timing.compare(steps, settings.rounds, settings.min_round_seconds)
    rates = {variant: round(t.throughput(batch), 3) for variant, t in timings.items()}
    row = {
        "model": name,
        "baseline": workloads.keras_baseline(name) if "keras" in rates else None,
        "mode": mode,
        "batch": batch,
        "size": size,
        "xla": xla,
        "images_per_second": rates,
        "eca_vs_plain": _ratio(rates["eca"], rates["plain"]),
        "eca_vs_keras": _ratio(rates["eca"], rates.get("keras")),
        "macs": macs,
    }
    if mode == "inference":
        gflops = peak.achieved_gflops(macs, rates["eca"])
        row.update(gflops=round(gflops, 2), peak_fraction=round(gflops / peak_gflops, 4))
    _release()
    return row


def _torch_group(name, mode, batch, settings, threads):
    size = workloads.input_size(name, settings.size)
    steps = {}
    for xla in settings.xla:  # one model per compiled step
        model = workloads.build_keras(name, size, "eca")
        steps["keras_xla" if xla else "keras"] = workloads.keras_step(model, mode, batch, xla)
    for side, attention in (("torch", True), ("torch_plain", False)):
        steps[side] = workloads.torch_step(name, mode, batch, size, attention, threads["torch"])
    timings = timing.compare(steps, settings.rounds, settings.min_round_seconds)
    rates = {side: round(t.throughput(batch), 3) for side, t in timings.items()}
    best_keras = max(rate for side, rate in rates.items() if side.startswith("keras"))
    row = {
        "model": name,
        "mode": mode,
        "batch": batch,
        "size": size,
        "threads": threads,
        "images_per_second": rates,
        "keras_vs_torch": _ratio(best_keras, rates["torch"]),
        "torch_eca_vs_plain": _ratio(rates["torch"], rates["torch_plain"]),
    }
    _release()
    return row


def _release():
    keras.backend.clear_session()
    gc.collect()


def _describe(row):
    rates = ", ".join(f"{side} {rate:.2f}" for side, rate in row["images_per_second"].items())
    where = f"{row['model']} {row['mode']} batch {row['batch']} at {row['size']}px"
    if "xla" in row:
        where += " (XLA)" if row["xla"] else " (no XLA)"
    return f"{where}: {rates} images/s"
