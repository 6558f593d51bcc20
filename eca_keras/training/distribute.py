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
    The validated ``TF_CONFIG`` (``None`` when unset or blank; :mod:`eca_keras.training.cluster`).
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
``multi_worker_fit_fix(strategy)``
    Makes Keras 3 ``fit`` work under ``MultiWorkerMirroredStrategy``
    (:mod:`eca_keras.training.mwms_fix`, which explains the Keras bug).
"""

from __future__ import annotations

import os

import tensorflow as tf

from eca_keras.training.cluster import (
    MULTI_WORKER_JOBS,
    STRATEGIES,
    ClusterConfig,
    TaskInfo,
    parse_tf_config,
    task_info_of,
)
from eca_keras.training.mwms_fix import DISABLE_FIX_ENV, multi_worker_fit_fix

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
    "task_info",
]


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


def task_info(strategy: tf.distribute.Strategy) -> TaskInfo:
    """This process' task; single-worker strategies are the one (chief) task of their cluster."""
    if _is_multi_worker(strategy):
        resolver = strategy.cluster_resolver
        spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
        cluster = {job: tuple(spec.get(job, ())) for job in MULTI_WORKER_JOBS if spec.get(job)}
        if cluster and resolver.task_type in cluster:
            return task_info_of(cluster, resolver.task_type, int(resolver.task_id or 0))
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


def _is_multi_worker(strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


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
