"""The benchmark harness: interleaved timing (on a fake clock), the suite end to end through the
CLI on a tiny model, the PyTorch rival's twin, and the memory probe. No timing is asserted."""

import json
import math

import pytest
from torch_or_skip import import_torch

from eca_keras import cli
from eca_keras.applications import get_model
from eca_keras.benchmark import Settings, memory, peak, timing, workloads
from eca_keras.complexity import count_macs


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_compare_alternates_sides_and_reports_medians(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    order = []
    slow_rounds = iter([0.2] * 2 + [0.2] * 5 + [5.0] * 5 + [0.2] * 5)  # warm-up, 3 rounds

    def fast():
        order.append("fast")
        clock.now += 0.1

    def slow():
        order.append("slow")
        clock.now += next(slow_rounds)

    result = timing.compare({"fast": fast, "slow": slow}, rounds=3, min_round_seconds=1.0)
    assert result["fast"].calls_per_round == 10 and result["slow"].calls_per_round == 5
    assert result["fast"].seconds == pytest.approx(0.1)
    assert result["slow"].seconds == pytest.approx(0.2)  # the median ignores the 5 s round
    assert result["slow"].rounds[1] == pytest.approx(5.0)
    assert result["fast"].throughput(8) == pytest.approx(80.0)
    timed = order[4:]  # after two warm-up calls each
    rounds = [timed[:15], timed[15:30], timed[30:]]
    assert rounds[0] == ["fast"] * 10 + ["slow"] * 5
    assert rounds[1] == ["slow"] * 5 + ["fast"] * 10  # reversed on alternate rounds
    assert rounds[2] == rounds[0]


def test_the_suite_reports_ratios_of_known_times(monkeypatch):
    """Fake steps that take known times on a fake clock: the suite's images per second, ratios,
    GFLOP/s and share of the matmul peak are the figures worked out here by hand."""
    from eca_keras.benchmark import suite

    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    seconds = {"eca": 0.25, "plain": 0.2, "keras": 0.16}  # per step of 8 images

    def fake_step(variant, mode, batch, xla):
        def step():
            clock.now += seconds[variant]

        return step

    monkeypatch.setattr(workloads, "build_keras", lambda name, size, variant: variant)
    monkeypatch.setattr(workloads, "keras_step", fake_step)
    monkeypatch.setattr(suite, "count_macs", lambda model: 4_000_000_000)
    monkeypatch.setattr(peak, "matmul_peak", lambda: 512.0)
    settings = Settings(models=("eca_resnet50",), modes=("inference",), batch_sizes=(8,),
                        xla=(False,), rounds=3, min_round_seconds=1.0)  # fmt: skip
    [row] = suite.run(settings, log=lambda line: None)["throughput"]
    assert row["images_per_second"] == {"eca": 32.0, "plain": 40.0, "keras": 50.0}
    assert (row["eca_vs_plain"], row["eca_vs_keras"]) == (0.8, 0.64)
    assert row["gflops"] == 256.0  # 2 FLOPs per MAC x 4e9 MACs x 32 images/s
    assert row["peak_fraction"] == 0.5  # of 512 GFLOP/s
    assert row["baseline"] == "ResNet50" and row["macs"] == 4_000_000_000


def test_compare_and_settings_reject_bad_input():
    with pytest.raises(ValueError, match="rounds"):
        timing.compare({"a": lambda: None}, rounds=0)
    with pytest.raises(ValueError, match="empty"):
        timing.compare({})
    with pytest.raises(ValueError, match="Unknown model"):
        Settings(models=("resnet9000",))
    with pytest.raises(ValueError, match="modes"):
        Settings(modes=("serving",))
    with pytest.raises(ValueError, match="Batch sizes"):
        Settings(batch_sizes=(0,))
    with pytest.raises(ValueError, match="xla"):
        Settings(xla=())
    with pytest.raises(ValueError, match="size"):
        Settings(size=8)
    with pytest.raises(ValueError, match="threads"):
        Settings(threads=0)


def test_cli_rejects_unknown_model(capsys):
    assert cli.main(["benchmark", "--models", "resnet9000"]) == 1
    assert "Unknown model" in capsys.readouterr().err


def test_arithmetic_rate():
    assert peak.achieved_gflops(4_089_184_256, 10.0) == pytest.approx(81.78368512)
    assert peak.matmul_peak(size=128, rounds=2) > 0


def test_torch_plain_twin_matches_keras_plain_twin():
    torch = import_torch()
    from eca_keras.testing import torch_reference

    def params(module):
        return sum(p.numel() for p in module.parameters())

    for name, builder in (
        ("eca_resnet50", lambda: torch_reference.official_resnet(50)),
        ("eca_mobilenet_v2", torch_reference.official_mobilenet_v2),
    ):
        eca, plain = builder(), torch_reference.without_attention(builder())
        assert not any(isinstance(m, torch_reference.EcaLayer) for m in plain.modules())
        keras_eca = get_model(name, weights=None, attention=True).count_params()
        keras_plain = get_model(name, weights=None, attention=False).count_params()
        assert params(eca) - params(plain) == keras_eca - keras_plain > 0
        assert params(plain) + _bn_buffers(plain) == keras_plain
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert plain.eval()(images).shape == (1, 1000)


def _bn_buffers(module):
    return sum(b.numel() for n, b in module.named_buffers() if n.endswith(("_mean", "_var")))


def test_benchmark_cli_end_to_end(tmp_path, capsys):
    """A tiny real run: inference in graph mode, with keras.applications and the PyTorch rival."""
    import_torch()
    output = tmp_path / "bench.json"
    argv = ["benchmark", "--models", "eca_mobilenet_v2", "--size", "32", "--batch-sizes", "2"]
    argv += ["--rounds", "2", "--min-round-seconds", "0", "--xla", "off", "--torch"]
    argv += ["--threads", "1"]  # PyTorch's spinning OpenMP threads crawl on a busy machine
    argv += ["--output", str(output)]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    results = json.loads(output.read_text())
    assert [(r["mode"], r["batch"], r["xla"]) for r in results["throughput"]] == [
        ("inference", 2, False)
    ]
    # (The arithmetic of the figures: test_the_suite_reports_ratios_of_known_times.)
    for row in results["throughput"]:
        rates = row["images_per_second"]
        assert set(rates) == {"eca", "plain", "keras"} and min(rates.values()) > 0
        assert row["baseline"] == "MobileNetV2"
    inference = results["throughput"][0]
    macs = count_macs(get_model("eca_mobilenet_v2", weights=None, input_shape=(32, 32, 3)))
    assert inference["macs"] == macs and inference["gflops"] > 0
    assert [(r["mode"], set(r["images_per_second"])) for r in results["torch"]] == [
        ("inference", {"keras", "torch", "torch_plain"})
    ]
    # pytest started TensorFlow before the CLI, so only PyTorch could be given one thread.
    tf_threads = workloads.use_threads(1)
    assert results["torch"][0]["threads"] == {"tensorflow": tf_threads, "torch": 1}
    assert results["machine"]["threads"] == tf_threads
    table = captured.out
    assert "| eca_mobilenet_v2 | 32 | 2 | graph |" in table
    assert "Against the PyTorch reference" in table and "[3/3]" in captured.err


def test_torch_training_step_updates_the_reference():
    torch = import_torch()
    torch.manual_seed(0)
    # 64 px: at 32 the last blocks are 1x1, where batch-2 BatchNorm outputs only +-1 per
    # channel and the last ECA kernel's gradient vanishes.
    step = workloads.torch_step("eca_mobilenet_v2", "training", 2, 64, threads=1)
    model = step.model
    before = [p.detach().clone() for p in model.parameters()]
    step()
    changed = [not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)]
    assert all(changed)
    with pytest.raises(ValueError, match="No PyTorch reference"):
        workloads.torch_step("ecaresnet50d", "inference", 1, 32)


def test_training_memory_probe():
    record = memory.training_peak_memory("eca_resnet18", "eca", 4, 32, False, steps=2)
    assert set(record) == {"model_mib", "first_step_peak_mib", "step_peak_mib", "step_mib"}
    assert 0 < record["model_mib"] < record["first_step_peak_mib"]
    assert record["step_peak_mib"] > record["model_mib"] and record["step_mib"] >= 0
    with pytest.raises(ValueError, match="steps"):
        memory.training_peak_memory("eca_mobilenet_v2", "eca", 4, 32, False, steps=1)
    assert not math.isnan(record["step_mib"])


def test_the_pytorch_rival_trains_in_a_process_that_loaded_tensorflow_first():
    """torch's optimizers import triton, and triton imported after TensorFlow kills the process
    (a segmentation fault): the benchmark's torch import must leave a training step working."""
    import subprocess
    import sys

    import_torch()
    program = (
        "import tensorflow as tf\n"
        "tf.reduce_sum(tf.ones(3)).numpy()\n"
        "from eca_keras.benchmark.workloads import import_torch\n"
        "torch = import_torch()\n"
        "model = torch.nn.Linear(3, 2)\n"
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n"
        "model(torch.ones(4, 3)).sum().backward()\n"
        "optimizer.step()\n"
        "print('stepped')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and "stepped" in result.stdout, result.stderr[-2000:]
