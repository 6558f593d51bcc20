"""Peak memory of a training step, measured in a fresh process.

The child builds and compiles the model (``model_mib``: resident set after that), runs one
training step (tracing and compiling happen here; ``first_step_peak_mib``: peak so far), resets
the kernel's peak-RSS mark, runs more steps and reads the peak again (``step_peak_mib``). A
steady training step needs ``step_peak_mib``; ``step_mib`` is what it adds over the resident set
just before it (activations kept for the backward pass, gradients, workspace).

Linux only: it reads ``VmRSS``/``VmHWM`` from ``/proc/self/status`` and resets the mark
through ``/proc/self/clear_refs``.

    python -m eca_keras.benchmark.memory MODEL VARIANT BATCH SIZE XLA STEPS   # one JSON line
"""

import json
import os
import subprocess
import sys


def _status_mib(field):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # peak RSS := current RSS


def training_peak_memory(name, variant, batch, size, xla, steps=3, timeout=1800):
    """Memory figures (MiB) of ``variant`` ("eca", "plain", "keras") of model ``name`` training
    at ``batch`` x ``size`` px, measured in a child process."""
    if not os.path.exists("/proc/self/clear_refs"):
        raise RuntimeError("Measuring peak memory needs Linux (/proc/self/clear_refs).")
    if steps < 2:
        raise ValueError(f"`steps` must be at least 2 (one warm-up). Received: steps={steps}")
    command = [sys.executable, "-m", __name__, name, variant, str(batch), str(size)]
    command += [str(int(bool(xla))), str(steps)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError(
            f"Measuring the training memory of {name} ({variant}) failed:\n{done.stderr[-2000:]}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _child(name, variant, batch, size, xla, steps):
    from eca_keras.benchmark import workloads

    model = workloads.build_keras(name, int(size), variant)
    step = workloads.keras_step(model, "training", int(batch), bool(int(xla)))
    record = {"model_mib": _status_mib("VmRSS")}
    step()
    record["first_step_peak_mib"] = _status_mib("VmHWM")
    before = _status_mib("VmRSS")
    _reset_peak()
    for _ in range(int(steps) - 1):
        step()
    record["step_peak_mib"] = _status_mib("VmHWM")
    record["step_mib"] = record["step_peak_mib"] - before
    print(json.dumps({key: round(value, 1) for key, value in record.items()}))


if __name__ == "__main__":
    _child(*sys.argv[1:])
