"""Markdown tables of :func:`eca_keras.benchmark.suite.run` results."""


def _rate(value):
    return "" if value is None else f"{value:.2f}"


def _times(value):
    return "" if value is None else f"{value:.3f}x"


def _xla(value):
    return "XLA" if value else "graph"


def _table(header, rule, rows):
    """A Markdown table from its header line, its alignment rule and lists of cells."""
    lines = [header, rule] + ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def throughput_table(results, mode):
    rows = [row for row in results["throughput"] if row["mode"] == mode]
    if not rows:
        return ""
    inference = mode == "inference"
    header = "| model | px | batch | TF | ECA (img/s) | plain twin | ECA / twin |"
    header += " keras.applications | ECA / keras.applications |"
    rule = "|---|---:|---:|---|---:|---:|---:|---|---:|"
    if inference:
        header += " GFLOP/s (of matmul peak) |"
        rule += "---:|"
    table = []
    for row in rows:
        rates = row["images_per_second"]
        baseline = row["baseline"] or ""
        if baseline:
            baseline = f"{baseline} {_rate(rates.get('keras'))}"
        cells = [
            row["model"],
            str(row["size"]),
            str(row["batch"]),
            _xla(row["xla"]),
            _rate(rates["eca"]),
            _rate(rates["plain"]),
            _times(row["eca_vs_plain"]),
            baseline,
            _times(row["eca_vs_keras"]),
        ]
        if inference:
            cells.append(f"{row['gflops']:.1f} ({row['peak_fraction']:.0%})")
        table.append(cells)
    return _table(header, rule, table)


def torch_table(results):
    if not results["torch"]:
        return ""
    table = []
    for row in results["torch"]:
        rates = row["images_per_second"]
        cells = [
            row["model"],
            row["mode"],
            str(row["size"]),
            str(row["batch"]),
            "{tensorflow} / {torch}".format(**row["threads"]),
            _rate(rates.get("keras_xla")),
            _rate(rates.get("keras")),
            _rate(rates["torch"]),
            _times(row["keras_vs_torch"]),
            _times(row["torch_eca_vs_plain"]),
        ]
        table.append(cells)
    return _table(
        "| model | step | px | batch | threads (TF / PyTorch) | Keras XLA (img/s) | Keras graph |"
        " PyTorch | best Keras / PyTorch | PyTorch ECA / plain |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        table,
    )


def memory_table(results):
    if not results["memory"]:
        return ""
    figures = ("model_mib", "first_step_peak_mib", "step_peak_mib", "step_mib")
    table = [
        [row["model"], row["variant"], str(row["size"]), str(row["batch"]), _xla(row["xla"])]
        + [f"{row[key]:.0f}" for key in figures]
        for row in results["memory"]
    ]
    return _table(
        "| model | variant | px | batch | TF | model built (MiB) | first step peak (MiB) |"
        " training step peak (MiB) | step adds (MiB) |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|",
        table,
    )


def markdown(results):
    """All tables with a one-line header on where they were measured."""
    machine = results["machine"]
    settings = results["settings"]
    parts = [
        f"{machine['processor']}, {machine['threads']} threads, TensorFlow "
        f"{machine['tensorflow']}, Keras {machine['keras']}"
        + (f", PyTorch {machine['torch']}" if "torch" in machine else "")
        + f". Float32 matmul peak {results['matmul_peak_gflops']} GFLOP/s. Throughput is the"
        f" median of {settings['rounds']} interleaved rounds; ratios compare sides of one run."
        " TF: XLA = `jit_compile=True`, graph = `tf.function` without XLA.\n"
    ]
    for title, table in (
        ("Inference", throughput_table(results, "inference")),
        ("Training step (forward, backward, SGD update)", throughput_table(results, "training")),
        ("Against the PyTorch reference (same batch, same threads)", torch_table(results)),
        ("Peak memory of a training step", memory_table(results)),
    ):
        if table:
            parts.append(f"**{title}**\n\n{table}")
    return "\n".join(parts)
