"""The ``tf.distribute`` layer of the ``model.fit`` driver (``eca-keras train --strategy ...``).

API
---
``configure_logical_cpus(n)``
    Splits the CPU into ``n`` logical devices, so that ``mirrored`` training can be tried (and
    tested) on a machine without GPUs. Call it before TensorFlow initialises its devices (before
    any strategy, tensor or model exists); afterwards it raises ``RuntimeError`` unless the
    split is already ``n``.
``create_strategy(name="auto", tpu=None) -> tf.distribute.Strategy``
    ``name`` is one of ``STRATEGIES``:

    * ``auto``: ``tpu`` given -> TPU; ``TF_CONFIG`` describing a cluster of more than one
      worker -> ``multi_worker``; more than one GPU -> ``mirrored``; else ``default``.
    * ``default``: ``tf.distribute.get_strategy()`` (no distribution, one replica).
    * ``one_device``: ``OneDeviceStrategy`` on the first GPU, else the CPU.
    * ``mirrored``: ``MirroredStrategy`` over all GPUs, or over all logical CPU devices when
      there is no GPU (``configure_logical_cpus(2)`` + ``mirrored`` = 2 replicas on a CPU).
    * ``multi_worker``: ``MultiWorkerMirroredStrategy`` from ``TF_CONFIG`` (required). Create
      it at program start-up, before TensorFlow runs anything.
    * ``tpu``: ``TPUClusterResolver(tpu)`` + connect + initialise + ``TPUStrategy``; ``tpu``
      (``--tpu``: a Cloud TPU name, ``local`` on a TPU VM, or ``grpc://HOST:PORT``) defaults to
      ``$TPU_NAME``. Failing to find or reach the TPU raises ``RuntimeError`` naming ``--tpu``.

    ``TF_CONFIG`` is validated (``parse_tf_config``) before TensorFlow reads it: malformed JSON,
    no ``cluster`` or ``task``, a task type not in the cluster, an index out of range... raise
    ``ValueError`` saying what is wrong. An unknown ``name`` raises ``ValueError`` listing them.
``parse_tf_config(raw=None) -> ClusterConfig | None``
    The validated ``TF_CONFIG`` (``None`` when unset or blank); no TensorFlow involved.
``task_info(strategy) -> TaskInfo``, ``is_chief(strategy) -> bool``
    Which task of the cluster this process is. Single-worker strategies: the only task, chief.
    Multi-worker: the ``chief`` task, or ``worker`` 0 when the cluster has no chief.
``describe(strategy) -> str``
    One line for the log: ``"MultiWorkerMirroredStrategy: 2 replicas (worker 0 of 2, chief)"``.
``global_batch_size(batch_size, strategy) -> int``, ``per_replica_batch_size(...)``
    The batch size a user gives is GLOBAL: the examples of one optimizer step, over all replicas
    of all workers. Every worker batches its ``tf.data`` pipeline with it and ``tf.distribute``
    splits each batch between the replicas, so it must be divisible by
    ``strategy.num_replicas_in_sync`` (else ``ValueError``: "global batch 30 is not divisible by
    4 replicas"). The result does not depend on the number of replicas.
``scale_learning_rate(base_lr, global_batch, reference_batch=256) -> float``
    The linear scaling rule: ``base_lr * global_batch / reference_batch``.
``multi_worker_fit_fix(strategy)``
    Context manager to wrap ``model.fit`` / ``evaluate`` / ``predict`` in; it makes Keras 3 work
    under ``MultiWorkerMirroredStrategy`` (see below) and does nothing for any other strategy.
    Setting the environment variable ``ECA_KERAS_DISABLE_MWMS_FIX=1`` (``DISABLE_FIX_ENV``)
    turns it off, to check whether Keras still needs it.

The Keras 3 + MultiWorkerMirroredStrategy bug (keras-team/keras#20585, tensorflow#72388)
----------------------------------------------------------------------------------------
Keras 3's TensorFlow trainer calls ``Strategy.reduce`` in two ways that
``MultiWorkerMirroredStrategy`` (``CollectiveAllReduceExtended._reduce_to``) rejects once there
is more than one worker, although ``MirroredStrategy`` accepts both:

1. ``fit`` (l. 372) and ``evaluate`` (l. 488, also run by ``fit`` for ``validation_data``)
   call ``TensorFlowTrainer._maybe_symbolic_build(iterator=...)`` (keras 3.15,
   ``keras/src/backend/tensorflow/trainer.py`` l. 713-740). It takes the first distributed
   batch, a nested ``(x, y)`` tuple of ``PerReplica`` values, and calls
   ``strategy.reduce("MEAN", batch, axis=None)`` on the whole tuple (l. 731), only to read the
   shapes of the result for ``_symbolic_build``. ``Strategy.reduce`` documents a single value
   ("TODO: support value being a nest"); ``MirroredExtended._reduce_to`` maps over nests anyway,
   but ``CollectiveAllReduceExtended._reduce_to`` (multi-worker) hands the tuple to
   ``CollectiveAllReduce.reduce`` -> ``_make_tensor_into_per_replica`` -> ``convert_to_tensor``:
   ``ValueError: Attempt to convert a value (PerReplica: ...) with an unsupported type``.
2. Every train/test step: ``one_step_on_data`` (l. 135 and 285) -> ``reduce_per_replica(logs,
   strategy, "auto")`` (l. 778), which in multi-worker mode calls ``strategy.reduce("MEAN", v,
   axis=0)`` (l. 841) on each log value. They are scalars: ``ValueError: Invalid reduction
   dimension 0 for input with 0 dimensions`` (tensorflow#72388). The single-worker branch
   computes ``reduce_mean(local_results, axis=0)``, the mean over replicas.

The workaround gives the strategy instance, for the duration of the ``with`` block, a
``reduce`` that accepts what Keras passes: a nest is reduced leaf by leaf (``None`` leaves are
kept), and a reduction along ``axis`` of a scalar (rank-0) value becomes the reduction across
replicas (``axis=None``), which is what Keras computes everywhere else. Every other call goes to
the original method unchanged, so results are exactly what Keras asks for, computed by the
strategy's own collectives. Nothing in Keras or TensorFlow is patched and no other strategy
object is touched; on exit the instance attribute is removed. The cost: ``fit``/``evaluate``
all-reduce their first batch once (one collective per tensor), as under ``MirroredStrategy``;
Keras makes these calls in the same order on every worker, so the collectives pair up.

Under multi-worker training all workers must call the same collectives in the same order, so
callbacks that only the chief runs must not read ``ON_READ`` (metric) variables; saving the
model (``ModelCheckpoint``, ``BackupAndRestore``) and ``CSVLogger`` are fine on the chief alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Mapping

import tensorflow as tf

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")
DISABLE_FIX_ENV = "ECA_KERAS_DISABLE_MWMS_FIX"
_MULTI_WORKER_JOBS = ("chief", "worker")

__all__ = [
    "DISABLE_FIX_ENV",
    "STRATEGIES",
    "ClusterConfig",
    "TaskInfo",
    "configure_logical_cpus",
    "create_strategy",
    "describe",
    "global_batch_size",
    "is_chief",
    "multi_worker_fit_fix",
    "parse_tf_config",
    "per_replica_batch_size",
    "scale_learning_rate",
    "task_info",
]


# --------------------------------------------------------------------------- TF_CONFIG


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    """This process' place in the cluster: ``rank`` 0 is the chief when there is one."""

    task_type: str | None
    task_index: int
    num_workers: int
    rank: int
    is_chief: bool


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    """A validated ``TF_CONFIG``: ``cluster`` maps ``chief``/``worker`` to ``host:port`` lists."""

    cluster: Mapping[str, tuple[str, ...]]
    task_type: str
    task_index: int

    @property
    def num_workers(self) -> int:
        return sum(len(self.cluster.get(job, ())) for job in _MULTI_WORKER_JOBS)

    def task_info(self) -> TaskInfo:
        return _task_info(self.cluster, self.task_type, self.task_index)


def _task_info(cluster, task_type, task_index) -> TaskInfo:
    chiefs = len(cluster.get("chief", ()))
    workers = len(cluster.get("worker", ()))
    if chiefs:
        chief = task_type == "chief"
    else:
        chief = task_type == "worker" and task_index == 0
    rank = task_index if task_type == "chief" else chiefs + task_index
    return TaskInfo(task_type, task_index, chiefs + workers, rank, chief)


def _tf_config_error(message, raw):
    shown = raw if len(raw) <= 300 else raw[:300] + "..."
    return ValueError(f"Invalid TF_CONFIG: {message}. TF_CONFIG={shown}")


def parse_tf_config(raw: str | None = None) -> ClusterConfig | None:
    """Validates ``raw`` (default: ``$TF_CONFIG``); ``None`` when it is unset or blank.

    Expected: ``{"cluster": {"worker": ["host:port", ...], "chief": ["host:port"]},
    "task": {"type": "worker", "index": 0}}`` (``chief`` optional; other keys ignored).
    Raises ``ValueError`` saying what is wrong otherwise.
    """
    if raw is None:
        raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise _tf_config_error(f"not valid JSON ({error})", raw) from None
    if not isinstance(config, dict):
        raise _tf_config_error("expected a JSON object with 'cluster' and 'task'", raw)

    cluster = config.get("cluster")
    if not cluster:
        raise _tf_config_error("missing 'cluster' (a map from job name to host:port lists)", raw)
    if not isinstance(cluster, dict):
        raise _tf_config_error("'cluster' must be a map from job name to host:port lists", raw)
    jobs = {}
    seen = {}
    for job, addresses in cluster.items():
        if job == "ps":
            raise _tf_config_error(
                "'ps' jobs mean parameter-server training, which is not supported: "
                "MultiWorkerMirroredStrategy takes 'chief' and 'worker' jobs",
                raw,
            )
        if job not in _MULTI_WORKER_JOBS:
            raise _tf_config_error(
                f"unsupported job {job!r} in 'cluster' (supported: chief, worker)", raw
            )
        if (
            not isinstance(addresses, list)
            or not addresses
            or not all(isinstance(a, str) and a.strip() for a in addresses)
        ):
            raise _tf_config_error(
                f"cluster job {job!r} must be a non-empty list of 'host:port' strings", raw
            )
        for index, address in enumerate(addresses):
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit():
                raise _tf_config_error(
                    f"cluster address {address!r} ({job} {index}) is not 'host:port'", raw
                )
            if address in seen:
                raise _tf_config_error(
                    f"cluster address {address!r} is used by both {seen[address]} and "
                    f"{job} {index}",
                    raw,
                )
            seen[address] = f"{job} {index}"
        jobs[job] = tuple(addresses)
    if len(jobs.get("chief", ())) > 1:
        raise _tf_config_error("a cluster has at most one 'chief' address", raw)

    task = config.get("task")
    if not task:
        raise _tf_config_error("missing 'task' (this process: {'type': ..., 'index': ...})", raw)
    if not isinstance(task, dict):
        raise _tf_config_error("'task' must be an object {'type': ..., 'index': ...}", raw)
    task_type = task.get("type")
    if not isinstance(task_type, str) or not task_type:
        raise _tf_config_error("missing task 'type' ('chief' or 'worker')", raw)
    if task_type not in jobs:
        raise _tf_config_error(
            f"task type {task_type!r} is not a job of the cluster "
            f"(cluster jobs: {', '.join(jobs)})",
            raw,
        )
    index = task.get("index")
    if isinstance(index, bool) or not isinstance(index, int):
        raise _tf_config_error(f"task 'index' must be an integer, got {index!r}", raw)
    if not 0 <= index < len(jobs[task_type]):
        raise _tf_config_error(
            f"task index {index} is out of range: job {task_type!r} has "
            f"{len(jobs[task_type])} address(es), so the index must be in "
            f"0..{len(jobs[task_type]) - 1}",
            raw,
        )
    return ClusterConfig(jobs, task_type, index)


# --------------------------------------------------------------------------- strategies


def configure_logical_cpus(n: int) -> int:
    """Splits the (first) physical CPU into ``n`` logical devices; returns ``n``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of logical CPUs must be a positive integer, got {n!r}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
        )
    except RuntimeError as error:
        current = len(tf.config.list_logical_devices("CPU"))
        if current == n:
            return n
        raise RuntimeError(
            f"Cannot split the CPU into {n} logical devices: TensorFlow has already "
            f"initialised its devices ({current} logical CPU(s)). Call "
            "configure_logical_cpus() at start-up, before creating any strategy, tensor or "
            "model."
        ) from error
    return n


def create_strategy(name: str = "auto", tpu: str | None = None) -> tf.distribute.Strategy:
    """The ``tf.distribute.Strategy`` called ``name`` (see the module docstring)."""
    key = str(name).strip().lower().replace("-", "_")
    if key not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")
    if key == "auto":
        if tpu:
            return _tpu_strategy(tpu)
        cluster = parse_tf_config()
        if cluster is not None and cluster.num_workers > 1:
            return _multi_worker_strategy()
        if len(tf.config.list_logical_devices("GPU")) > 1:
            return _mirrored_strategy()
        return tf.distribute.get_strategy()
    if key == "default":
        return tf.distribute.get_strategy()
    if key == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if key == "mirrored":
        return _mirrored_strategy()
    if key == "multi_worker":
        if parse_tf_config() is None:
            raise ValueError(
                "Strategy 'multi_worker' needs the TF_CONFIG environment variable, e.g. "
                '{"cluster": {"worker": ["host1:port", "host2:port"]}, '
                '"task": {"type": "worker", "index": 0}} (a different task on each worker)'
            )
        return _multi_worker_strategy()
    return _tpu_strategy(tpu or os.environ.get("TPU_NAME"))


def _mirrored_strategy():
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy(devices=[device.name for device in devices])


def _multi_worker_strategy():
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as error:
        if "program startup" not in str(error):
            raise
        raise RuntimeError(
            "MultiWorkerMirroredStrategy must be created at program start-up, before "
            f"TensorFlow runs anything (create_strategy() first): {error}"
        ) from error


def _tpu_strategy(tpu):
    if not tpu:
        raise ValueError(
            "Strategy 'tpu' needs a TPU: pass --tpu NAME (a Cloud TPU name, 'local' on a TPU VM, "
            "or grpc://HOST:PORT) or set TPU_NAME"
        )
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        if tpu != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as error:  # urllib, gRPC, TF and ValueError alike: say which --tpu failed
        raise RuntimeError(
            f"Could not find or connect to the TPU given by --tpu {tpu!r}: "
            f"{type(error).__name__}: {error}"
        ) from error
    return tf.distribute.TPUStrategy(resolver)


# --------------------------------------------------------------------------- about a strategy


def _is_multi_worker(strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def task_info(strategy: tf.distribute.Strategy) -> TaskInfo:
    """This process' task; single-worker strategies are the one (chief) task of their cluster."""
    if _is_multi_worker(strategy):
        resolver = strategy.cluster_resolver
        spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
        cluster = {job: tuple(spec.get(job, ())) for job in _MULTI_WORKER_JOBS if spec.get(job)}
        if cluster and resolver.task_type in cluster:
            return _task_info(cluster, resolver.task_type, int(resolver.task_id or 0))
    return TaskInfo(None, 0, 1, 0, True)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files (checkpoints, logs)."""
    return task_info(strategy).is_chief


def _plural(count, word):
    return f"{count} {word}" + ("" if count == 1 else "s")


def _short_device(name):
    return name.rsplit("device:", 1)[-1]


def describe(strategy: tf.distribute.Strategy) -> str:
    """One line for the run's log: the strategy, its replicas, this task."""
    replicas = _plural(strategy.num_replicas_in_sync, "replica")
    if _is_multi_worker(strategy):
        info = task_info(strategy)
        if info.task_type is None:
            where = "single worker"
        else:
            where = f"{info.task_type} {info.task_index} of {info.num_workers}"
            where += ", chief" if info.is_chief else ""
        return f"MultiWorkerMirroredStrategy: {replicas} ({where})"
    if type(strategy).__name__ == "_DefaultDistributionStrategy":
        return f"default strategy (no distribution): {replicas}"
    devices = getattr(strategy.extended, "worker_devices", ())
    where = f" on {', '.join(_short_device(d) for d in devices)}" if devices else ""
    return f"{type(strategy).__name__}: {replicas}{where}"


# --------------------------------------------------------------------------- batch and rate


def global_batch_size(batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """Validates the user's GLOBAL batch size against the strategy's replicas; returns it."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"the batch size must be a positive integer, got {batch_size!r}")
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        lower = batch_size // replicas * replicas
        options = " or ".join(str(b) for b in (lower, lower + replicas) if b > 0)
        raise ValueError(
            f"global batch {batch_size} is not divisible by {replicas} replicas: the batch size "
            f"is global (split between the replicas), use a multiple of {replicas} such as "
            f"{options}"
        )
    return batch_size


def per_replica_batch_size(batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """The examples each replica sees per step for the global ``batch_size``."""
    return global_batch_size(batch_size, strategy) // strategy.num_replicas_in_sync


def scale_learning_rate(base_lr: float, global_batch: int, reference_batch: int = 256) -> float:
    """Linear scaling rule (Goyal et al. 2017): ``base_lr * global_batch / reference_batch``."""
    if not base_lr > 0 or not global_batch > 0 or not reference_batch > 0:
        raise ValueError(
            "scale_learning_rate needs positive numbers, got "
            f"base_lr={base_lr!r}, global_batch={global_batch!r}, "
            f"reference_batch={reference_batch!r}"
        )
    return float(base_lr) * global_batch / reference_batch


# --------------------------------------------------------------------------- the Keras fix


def _fix_disabled() -> bool:
    return os.environ.get(DISABLE_FIX_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _is_scalar(value) -> bool:
    parts = value.values if isinstance(value, tf.distribute.DistributedValues) else (value,)
    return all(getattr(getattr(p, "shape", None), "rank", None) == 0 for p in parts)


def _tolerant_reduce(original):
    """``original`` (a bound ``Strategy.reduce``) accepting what Keras 3 passes it."""

    def reduce_one(reduce_op, value, axis):
        if value is None:
            return None
        if axis is not None and _is_scalar(value):
            axis = None  # the mean (sum) over replicas of scalars, as Keras means it
        return original(reduce_op, value, axis=axis)

    def reduce(reduce_op, value, axis=None):
        if tf.nest.is_nested(value):
            return tf.nest.map_structure(lambda v: reduce_one(reduce_op, v, axis), value)
        return reduce_one(reduce_op, value, axis)

    reduce.__wrapped__ = original
    reduce.__doc__ = f"{original.__doc__}\n\n(Accepts nests: eca_keras multi_worker_fit_fix.)"
    return reduce


@contextlib.contextmanager
def multi_worker_fit_fix(strategy: tf.distribute.Strategy):
    """Within the block, Keras 3 ``fit``/``evaluate``/``predict`` work under ``strategy``.

    A no-op unless ``strategy`` is a ``MultiWorkerMirroredStrategy`` and
    ``$ECA_KERAS_DISABLE_MWMS_FIX`` is unset (or 0). Re-entrant. Yields ``strategy``. Why and
    how: the module docstring. Drop it once keras-team/keras#20585 is fixed
    (``tests/test_distribute.py`` then fails on purpose).
    """
    if not _is_multi_worker(strategy) or _fix_disabled() or "reduce" in vars(strategy):
        yield strategy  # other strategies, disabled, or already inside the fix
        return
    strategy.reduce = _tolerant_reduce(strategy.reduce)
    try:
        yield strategy
    finally:
        del strategy.reduce
