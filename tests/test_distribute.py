"""eca_keras.training.distribute: strategy choice, TF_CONFIG validation, batch rules, and the
Keras 3 + MultiWorkerMirroredStrategy workaround (two real workers on 127.0.0.1).

Multi-worker and logical-device tests run in subprocesses (``tests/multiworker_worker.py``):
both need TensorFlow configured before it initialises, which has happened in this process.
"""

import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import tensorflow as tf
from local_ports import free_ports

from eca_keras.training import distribute, mwms_fix, recipes

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
WORKER = TESTS / "multiworker_worker.py"


# --------------------------------------------------------------------------- helpers


def _env(**extra):
    env = dict(os.environ)
    for name in ("TF_CONFIG", "TPU_NAME", distribute.DISABLE_FIX_ENV):
        env.pop(name, None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["CUDA_VISIBLE_DEVICES"] = "-1"
    env.update(extra)
    return env


def _tf_config(cluster, task_type, index):
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


def _run(commands, tmp_path, timeout=600):
    """Runs ``commands`` ([(argv, env), ...]) at once; returns [(returncode, output)].

    Output goes to files (no pipe can fill up and stall a worker); a worker blocked in a
    collective ignores SIGTERM, so stragglers are SIGKILLed at the (generous) deadline and their
    output says so: a hang fails the test with a reason, a slow machine does not.
    """
    processes = []
    for i, (argv, env) in enumerate(commands):
        log = open(tmp_path / f"process{i}.log", "w+")  # closed below
        processes.append(
            (subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO), log)
        )
    deadline = time.monotonic() + timeout
    results = []
    try:
        for process, _ in processes:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for process, log in processes:
            hung = process.poll() is None
            if hung:
                process.kill()
                process.wait()
            log.seek(0)
            output = log.read() + (f"\n[killed: still running after {timeout} s]" if hung else "")
            results.append((process.returncode, output))
            log.close()
    return results


def _result(output):
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    assert lines, f"the worker printed no RESULT line; its output ends with:\n{output[-4000:]}"
    return json.loads(lines[-1][len("RESULT ") :])


def _two_workers(tmp_path, *args, **env):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    commands = [
        (
            [sys.executable, str(WORKER), "--out", str(tmp_path / "run"), *args],
            _env(TF_CONFIG=_tf_config(cluster, "worker", index), **env),
        )
        for index in range(2)
    ]
    return _run(commands, tmp_path)


# --------------------------------------------------------------------------- two workers


@pytest.mark.slow
def test_two_workers_fit_with_the_workaround(tmp_path):
    runs = _two_workers(tmp_path)
    results = [_result(output) for _, output in runs]
    for (code, output), result in zip(runs, results, strict=True):
        assert code == 0 and result["ok"], output[-6000:]
        assert result["replicas"] == 2
        assert result["patched_in_block"] and result["restored_after_block"]
        losses = result["history"]["loss"] + result["history"]["val_loss"]
        assert all(0 < loss < 10 for loss in losses)  # finite
        assert result["evaluate"]["loss"] == pytest.approx(result["history"]["val_loss"][-1])
        assert result["predict_shape"] == [32, 4]  # all workers' predictions, in order
        assert result["predict_max_abs_diff"] < 1e-5
        assert result["resumed_epochs"] == 1  # restored epoch 2 of 3 from the chief's backup
        # Synchronous data parallelism: each worker trained on its half of every global batch,
        # yet the weights equal those of one process training on the whole global batches.
        assert result["moved_max_abs"] > 1e-2
        assert result["ref_max_abs_diff"] < 1e-5
    chief, worker = results
    assert chief["describe"] == "MultiWorkerMirroredStrategy: 2 replicas (worker 0 of 2, chief)"
    assert worker["describe"] == "MultiWorkerMirroredStrategy: 2 replicas (worker 1 of 2)"
    assert chief["chief"] and not worker["chief"]
    # Both workers end with the same model and the same (globally reduced) logs.
    assert chief["checksum"] == pytest.approx(worker["checksum"], rel=1e-6)
    assert chief["final_checksum"] == pytest.approx(worker["final_checksum"], rel=1e-6)
    for key, values in chief["history"].items():
        assert values == pytest.approx(worker["history"][key], rel=1e-6), key
    # Only the chief wrote the run's files.
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {"backup", "best.keras", "history.csv"}
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 3  # header + 3 epochs


@pytest.mark.slow
def test_two_workers_fit_fails_without_the_workaround(tmp_path):
    """Keras 3 (keras-team/keras#20585) cannot ``fit`` under MultiWorkerMirroredStrategy.

    If this test fails because ``fit`` succeeded, Keras has fixed the bug: drop
    ``distribute.multi_worker_fit_fix`` (and this test).
    """
    runs = _two_workers(tmp_path, **{distribute.DISABLE_FIX_ENV: "1"})
    for code, output in runs:
        result = _result(output)
        assert not result["patched_in_block"]
        assert code == 1 and not result["ok"], "fit worked without the workaround: see docstring"
        assert result["stage"] == "fit"
        assert result["error_type"] == "ValueError"
        assert "PerReplica" in result["error"]
        assert any(frame.endswith(":_maybe_symbolic_build") for frame in result["frames"])


@pytest.mark.slow
def test_two_workers_need_both_halves_of_the_workaround(tmp_path):
    """With only nested reduces fixed, Keras' per-step ``reduce("MEAN", scalar, axis=0)`` fails."""
    runs = _two_workers(tmp_path, "--epochs", "1", "--nest-only-fix")
    for code, output in runs:
        result = _result(output)
        assert code == 1 and not result["ok"], output[-4000:]
        assert result["stage"] == "fit"
        assert "Invalid reduction dimension 0 for input with 0 dimensions" in result["error"]
        assert any(frame.endswith(":reduce_per_replica") for frame in result["frames"])


# --------------------------------------------------------------------------- mirrored on CPUs


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus(tmp_path):
    argv = [sys.executable, str(WORKER), "--strategy", "mirrored", "--logical-cpus", "2"]
    [(code, output)] = _run([([*argv, "--out", str(tmp_path / "run")], _env())], tmp_path)
    result = _result(output)
    assert code == 0 and result["ok"], output[-6000:]
    assert result["replicas"] == 2
    assert result["describe"] == "MirroredStrategy: 2 replicas on CPU:0, CPU:1"
    assert not result["patched_in_block"]  # the workaround is a no-op here
    # Gradients are aggregated over both replicas: the same weights as one device on the whole
    # global batch (8 SGD steps), although each replica saw half of every batch.
    assert result["moved_max_abs"] > 1e-2
    assert result["ref_max_abs_diff"] < 1e-5
    assert result["predict_shape"] == [32, 4] and result["predict_max_abs_diff"] < 1e-5
    assert result["resumed_epochs"] == 1


# --------------------------------------------------------------------------- strategy choice

_PROBE = """
import json, sys
from eca_keras.training import distribute
if len(sys.argv) > 1:
    distribute.configure_logical_cpus(int(sys.argv[1]))
strategy = distribute.create_strategy("auto")
print("RESULT " + json.dumps({"class": type(strategy).__name__,
    "describe": distribute.describe(strategy), "chief": distribute.is_chief(strategy),
    "replicas": strategy.num_replicas_in_sync}), flush=True)
"""


def test_auto_with_a_chief_and_a_worker_is_multi_worker(tmp_path):
    ports = free_ports(2)
    cluster = {"chief": [f"127.0.0.1:{ports[0]}"], "worker": [f"127.0.0.1:{ports[1]}"]}
    commands = [
        ([sys.executable, "-c", _PROBE], _env(TF_CONFIG=_tf_config(cluster, task, 0)))
        for task in ("chief", "worker")
    ]
    runs = _run(commands, tmp_path)
    chief, worker = (_result(output) for _, output in runs)
    assert chief["class"] == worker["class"] == "CollectiveAllReduceStrategy"
    assert chief["describe"] == "MultiWorkerMirroredStrategy: 2 replicas (chief 0 of 2, chief)"
    assert worker["describe"] == "MultiWorkerMirroredStrategy: 2 replicas (worker 0 of 2)"
    assert chief["chief"] and not worker["chief"]  # with a chief, worker 0 is not the chief


def test_auto_without_tf_config_and_logical_cpus(tmp_path):
    """Logical CPUs are not GPUs: ``auto`` stays the default strategy, ``mirrored`` uses them."""
    [(code, output)] = _run([([sys.executable, "-c", _PROBE, "2"], _env())], tmp_path)
    result = _result(output)
    assert code == 0
    assert result["class"] == "_DefaultDistributionStrategy"
    assert result["describe"] == "default strategy (no distribution): 1 replica"
    assert result["chief"] and result["replicas"] == 1


def test_configure_logical_cpus_after_initialisation(tmp_path):
    script = """
from eca_keras.training import distribute
import tensorflow as tf
assert distribute.configure_logical_cpus(2) == 2
assert len(tf.config.list_logical_devices("CPU")) == 2  # initialises TensorFlow
assert distribute.configure_logical_cpus(2) == 2  # already so: fine
try:
    distribute.configure_logical_cpus(3)
except RuntimeError as error:
    print("ERROR", error)
"""
    [(code, output)] = _run([([sys.executable, "-c", script], _env())], tmp_path)
    assert code == 0, output
    assert "ERROR Cannot split the CPU into 3 logical devices" in output
    assert "already initialised" in output


def test_configure_logical_cpus_checks_its_argument():
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="positive integer"):
            distribute.configure_logical_cpus(bad)


def test_auto_without_tf_config_in_process(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = distribute.create_strategy("auto")
    if len(tf.config.list_logical_devices("GPU")) > 1:
        assert isinstance(strategy, tf.distribute.MirroredStrategy)
    else:
        assert strategy is tf.distribute.get_strategy()
        assert distribute.describe(strategy) == "default strategy (no distribution): 1 replica"
    assert distribute.is_chief(strategy)


def test_auto_with_a_single_task_cluster_is_not_multi_worker(monkeypatch):
    cluster = {"worker": ["127.0.0.1:1"]}
    monkeypatch.setenv("TF_CONFIG", _tf_config(cluster, "worker", 0))
    strategy = distribute.create_strategy("AUTO")
    assert not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def test_default_and_one_device(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.create_strategy("default") is tf.distribute.get_strategy()
    one = distribute.create_strategy("one-device")
    assert isinstance(one, tf.distribute.OneDeviceStrategy)
    assert distribute.describe(one).startswith("OneDeviceStrategy: 1 replica on ")
    assert distribute.is_chief(one)
    with distribute.multi_worker_fit_fix(one) as same:  # a no-op for other strategies
        assert same is one and "reduce" not in vars(one)


def test_unknown_strategy_lists_the_choices():
    with pytest.raises(ValueError, match="Unknown strategy 'horovod'") as info:
        distribute.create_strategy("horovod")
    assert "auto, default, one_device, mirrored, multi_worker, tpu" in str(info.value)


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable"):
        distribute.create_strategy("multi_worker")


def test_malformed_tf_config_is_rejected_before_tensorflow_sees_it(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": ')
    for name in ("auto", "multi_worker"):
        with pytest.raises(ValueError, match="Invalid TF_CONFIG: not valid JSON"):
            distribute.create_strategy(name)


def test_tpu_needs_the_tpu_argument(monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    with pytest.raises(ValueError, match="--tpu"):
        distribute.create_strategy("tpu", tpu=None)


def test_unreachable_tpu_fails_quickly_naming_the_argument(monkeypatch):
    # A TPU name is looked up through the GCE metadata server; point it at a closed local port
    # so that the test stays on 127.0.0.1 (and fails at once).
    monkeypatch.setenv("GCE_METADATA_HOST", f"127.0.0.1:{free_ports(1)[0]}")
    for proxy in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    # A hang is bounded (and reported) by a generous timeout, not timed: the machine is shared.
    outcome = _call_with_timeout(lambda: distribute.create_strategy("tpu", tpu="no-such-tpu"), 300)
    assert isinstance(outcome, RuntimeError) and "--tpu 'no-such-tpu'" in str(outcome), outcome


def _call_with_timeout(function, timeout):
    """``function()``'s exception (or result), run in a thread; fails the test if it is still
    running after ``timeout`` seconds."""
    import threading

    outcome = []

    def call():
        try:
            outcome.append(function())
        except Exception as error:  # handed to the test
            outcome.append(error)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(timeout)
    assert outcome, f"still running after {timeout} s: it hangs instead of failing"
    return outcome[0]


# --------------------------------------------------------------------------- TF_CONFIG


def _config(cluster, task):
    return json.dumps({"cluster": cluster, "task": task})


TWO = {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}


def test_parse_tf_config_valid(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.parse_tf_config() is None
    assert distribute.parse_tf_config("  ") is None
    monkeypatch.setenv("TF_CONFIG", _config(TWO, {"type": "worker", "index": 1}))
    config = distribute.parse_tf_config()
    assert config.cluster == {"worker": ("10.0.0.1:2222", "10.0.0.2:2222")}
    assert (config.task_type, config.task_index, config.num_workers) == ("worker", 1, 2)
    extra = json.loads(_config(TWO, {"type": "worker", "index": 0}))
    extra["environment"] = "cloud"  # other keys are fine
    assert distribute.parse_tf_config(json.dumps(extra)).task_info().is_chief


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"task": {"type": "worker", "index": 0}}), "missing 'cluster'"),
        (json.dumps({"cluster": ["a:1"], "task": {}}), "'cluster' must be a map"),
        (json.dumps({"cluster": TWO}), "missing 'task'"),
        (_config(TWO, ["worker", 0]), "'task' must be an object"),
        (_config(TWO, {"index": 0}), "missing task 'type'"),
        (_config(TWO, {"type": "chief", "index": 0}), "task type 'chief' is not a job"),
        (_config(TWO, {"type": "worker", "index": 2}), "task index 2 is out of range"),
        (_config(TWO, {"type": "worker", "index": -1}), "task index -1 is out of range"),
        (_config(TWO, {"type": "worker"}), "task 'index' must be an integer"),
        (_config(TWO, {"type": "worker", "index": "0"}), "task 'index' must be an integer"),
        (_config({"worker": []}, {"type": "worker", "index": 0}), "non-empty list"),
        (_config({"worker": "a:1"}, {"type": "worker", "index": 0}), "non-empty list"),
        (_config({"worker": ["a"]}, {"type": "worker", "index": 0}), "is not 'host:port'"),
        (_config({"worker": ["a:1", "a:1"]}, {"type": "worker", "index": 0}), "used by both"),
        (
            _config({"chief": ["a:1", "b:1"], "worker": ["c:1"]}, {"type": "chief", "index": 0}),
            "at most one 'chief'",
        ),
        (
            _config({"ps": ["a:1"], "worker": ["c:1"]}, {"type": "worker", "index": 0}),
            "parameter-server training",
        ),
        (_config({"evaluator": ["a:1"]}, {"type": "evaluator", "index": 0}), "unsupported job"),
    ],
)
def test_parse_tf_config_errors(raw, message):
    with pytest.raises(ValueError, match="Invalid TF_CONFIG") as info:
        distribute.parse_tf_config(raw)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("cluster", "task_type", "index", "chief", "rank"),
    [
        ({"worker": ["a:1", "b:1"]}, "worker", 0, True, 0),
        ({"worker": ["a:1", "b:1"]}, "worker", 1, False, 1),
        ({"chief": ["c:1"], "worker": ["a:1", "b:1"]}, "chief", 0, True, 0),
        ({"chief": ["c:1"], "worker": ["a:1", "b:1"]}, "worker", 0, False, 1),
        ({"chief": ["c:1"], "worker": ["a:1", "b:1"]}, "worker", 1, False, 2),
        ({"chief": ["c:1"]}, "chief", 0, True, 0),
    ],
)
def test_chief_from_tf_config(cluster, task_type, index, chief, rank):
    config = distribute.parse_tf_config(_config(cluster, {"type": task_type, "index": index}))
    info = config.task_info()
    assert (info.is_chief, info.rank) == (chief, rank)
    assert info.num_workers == sum(len(v) for v in cluster.values())


# --------------------------------------------------------------------------- batch and rate


def _replicas(n):
    return types.SimpleNamespace(num_replicas_in_sync=n)


def test_global_batch_size():
    assert distribute.global_batch_size(32, _replicas(4)) == 32
    assert distribute.per_replica_batch_size(32, _replicas(4)) == 8
    assert distribute.global_batch_size(7, _replicas(1)) == 7
    with pytest.raises(ValueError, match="global batch 30 is not divisible by 4 replicas") as e:
        distribute.global_batch_size(30, _replicas(4))
    assert "28 or 32" in str(e.value)
    with pytest.raises(ValueError, match="global batch 3 is not divisible by 4 replicas"):
        distribute.per_replica_batch_size(3, _replicas(4))
    for bad in (0, -8, 16.0, True, None):
        with pytest.raises(ValueError, match="positive integer"):
            distribute.global_batch_size(bad, _replicas(1))


def test_scale_learning_rate():
    assert recipes.scale_learning_rate(0.1, 256) == pytest.approx(0.1)
    assert recipes.scale_learning_rate(0.1, 1024) == pytest.approx(0.4)
    assert recipes.scale_learning_rate(0.5, 64, reference_batch=128) == pytest.approx(0.25)
    for args in ((0, 256), (0.1, 0), (0.1, 256, -1)):
        with pytest.raises(ValueError, match="positive"):
            recipes.scale_learning_rate(*args)


# --------------------------------------------------------------------------- the reduce wrapper


def test_tolerant_reduce_maps_nests_and_reduces_scalars_across_replicas():
    calls = []

    def original(reduce_op, value, axis=None):
        calls.append((reduce_op, value, axis))
        return ("reduced", value)

    reduce = mwms_fix._tolerant_reduce(original)
    x, y, scalar = tf.zeros((2, 3)), tf.zeros((2,)), tf.constant(1.0)
    assert reduce("MEAN", (x, {"y": y, "w": None}), axis=None) == (
        ("reduced", x),
        {"y": ("reduced", y), "w": None},
    )
    assert [c[1] for c in calls] == [x, y] and {c[2] for c in calls} == {None}
    calls.clear()
    reduce("MEAN", scalar, axis=0)  # Keras' log reduction: across replicas
    reduce("SUM", x, axis=0)  # a real axis stays
    assert [(c[0], c[2]) for c in calls] == [("MEAN", None), ("SUM", 0)]
    assert reduce.__wrapped__ is original
