"""``TF_CONFIG``: the cluster a multi-worker training process belongs to, validated before
TensorFlow reads it (no TensorFlow involved).

``parse_tf_config(raw=None) -> ClusterConfig | None``: malformed JSON, no ``cluster`` or ``task``,
a task type not in the cluster, an index out of range... raise ``ValueError`` saying what is
wrong. ``ClusterConfig.task_info()`` says which task this process is: the ``chief`` task, or
``worker`` 0 when the cluster has no chief, writes the run's files.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping

MULTI_WORKER_JOBS = ("chief", "worker")
STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")


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
        return sum(len(self.cluster.get(job, ())) for job in MULTI_WORKER_JOBS)

    def task_info(self) -> TaskInfo:
        return task_info_of(self.cluster, self.task_type, self.task_index)


def task_info_of(cluster, task_type, task_index) -> TaskInfo:
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
        if job not in MULTI_WORKER_JOBS:
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
