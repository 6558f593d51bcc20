"""Keras 3 ``fit`` under ``MultiWorkerMirroredStrategy``: ``multi_worker_fit_fix(strategy)``.

A context manager to wrap ``model.fit`` / ``evaluate`` / ``predict`` in; it makes Keras 3 work
under ``MultiWorkerMirroredStrategy`` and does nothing for any other strategy. Setting the
environment variable ``ECA_KERAS_DISABLE_MWMS_FIX=1`` (``DISABLE_FIX_ENV``) turns it off, to
check whether Keras still needs it.

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

import contextlib
import os

import tensorflow as tf

DISABLE_FIX_ENV = "ECA_KERAS_DISABLE_MWMS_FIX"


def _is_multi_worker(strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


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
