"""The run directory of ``eca-keras train``: its format, written safely, read in one place.

A run directory holds

- ``config.yaml``: the resolved training config, with ``num_classes`` and ``class_names``;
- ``history.csv``: one row per completed epoch (``epoch``, ``accuracy``, ``top5``, ``loss``,
  ``val_*`` ...), exactly once each across resumes;
- ``best.keras`` (best ``val_accuracy``) and ``last.keras``;
- ``backup/``: the state a resumed run starts from (weights, optimizer, epoch);
- ``logs/``: TensorBoard.

Every file is written to a temporary name beside its final one and renamed, so a process killed
at any moment (even SIGKILL) leaves either the old file or the new one, never a partial one. A
run directory is locked while a run trains in it, and a re-run must train the same thing.
"""

import contextlib
import csv
import io
import json
import math
import os
import signal
import threading
import zipfile

import yaml

from eca_keras.files import save_atomically, save_model_atomically, write_atomically
from eca_keras.preprocessing import IMAGENET_MEAN, IMAGENET_STD, EvalConfig

CONFIG_FILE = "config.yaml"
HISTORY_FILE = "history.csv"
BEST_MODEL = "best.keras"
LAST_MODEL = "last.keras"
MODEL_FILES = (BEST_MODEL, LAST_MODEL)
BACKUP_DIR = "backup"
LOGS_DIR = "logs"
LOCK_FILE = ".lock"
MONITOR = "val_accuracy"
# What a re-run in the same directory must share with the run already there.
IDENTITY_KEYS = ("model", "weights", "dataset", "image_size", "attention", "freeze_backbone")
DEFAULT_TASK = "classification"  # a config without "task" (every run before detection)


class RunDirectoryError(ValueError):
    """A run directory that cannot be used as asked (busy, another run's, damaged)."""


def default_model_dir(config):
    """``runs/<model>-<dataset>``."""
    dataset = str(config["dataset"]).replace("tfds:", "").strip("/").replace("/", "_")
    model = os.path.basename(str(config["model"]))
    return os.path.join("runs", f"{model}-{os.path.basename(dataset)}")


def is_readable_model_file(path):
    """Whether ``path`` is a complete ``.keras`` archive (a zip with its config and weights)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            return "config.json" in names and archive.testzip() is None
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


# --------------------------------------------------------------------------- config


def read_config(run_dir):
    """The run's ``config.yaml`` as a dict, ``{}`` where there is none."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path) as handle:
        try:
            config = yaml.safe_load(handle)
        except yaml.YAMLError as error:
            raise RunDirectoryError(f"{path} is not valid YAML: {error}") from None
    return config if isinstance(config, dict) else {}


def write_config(run_dir, config):
    write_atomically(os.path.join(run_dir, CONFIG_FILE), yaml.safe_dump(config, sort_keys=False))


def check_same_run(run_dir, config):
    """Refuses to train in ``run_dir`` if it holds a run of another model, dataset, size... ."""
    existing = read_config(run_dir)
    if not existing:
        return
    tasks = existing.get("task", DEFAULT_TASK), config.get("task", DEFAULT_TASK)
    if tasks[0] != tasks[1]:
        raise RunDirectoryError(
            f"{run_dir} holds a {tasks[0]} run, not {tasks[1]}. Use another --model-dir, or "
            "remove that directory to start over."
        )
    different = [
        f"{key}: {existing.get(key)!r} there, {config.get(key)!r} now"
        for key in IDENTITY_KEYS
        if key in existing and existing.get(key) != config.get(key)
    ]
    if different:
        raise RunDirectoryError(
            f"{run_dir} holds another run ({'; '.join(different)}). Use another --model-dir, "
            "or remove that directory to start over."
        )


def eval_config(config):
    """The :class:`EvalConfig` of a training config (``image_size`` and its ``eval`` mapping)."""
    evaluation = config.get("eval") or {}
    return EvalConfig(
        int(config["image_size"]),
        evaluation.get("crop_pct", 0.875),
        evaluation.get("interpolation", "bilinear"),
        tuple(evaluation.get("mean", IMAGENET_MEAN)),
        tuple(evaluation.get("std", IMAGENET_STD)),
    )


def class_names(config, num_classes):
    names = config.get("class_names") or [str(index) for index in range(num_classes)]
    return [str(name) for name in names]


# --------------------------------------------------------------------------- reading a run


def is_run_dir(path):
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, CONFIG_FILE))


def run_dir_of(model_path):
    """The run directory a ``.keras`` file belongs to (``config.yaml`` beside it), or None."""
    folder = os.path.dirname(os.path.abspath(model_path))
    return folder if os.path.isfile(os.path.join(folder, CONFIG_FILE)) else None


def model_file(run_dir):
    """The model a finished (or interrupted) run offers: ``best.keras``, else ``last.keras``.

    A damaged file (a run killed by an older version while writing it) is skipped with a
    warning; no usable file is an error naming the directory.
    """
    import warnings

    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"No such run directory: {run_dir}")
    for name in MODEL_FILES:
        path = os.path.join(run_dir, name)
        if not os.path.exists(path):
            continue
        if is_readable_model_file(path):
            return path
        warnings.warn(f"{path} is damaged (incomplete write); skipping it", stacklevel=2)
    raise FileNotFoundError(
        f"{run_dir} holds neither {' nor '.join(MODEL_FILES)} (complete): is it the "
        "--model-dir of an `eca-keras train` run that finished an epoch?"
    )


def read_history(run_dir):
    """The rows of ``history.csv`` (dicts of strings), ``[]`` where there is none."""
    path = os.path.join(run_dir, HISTORY_FILE)
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as handle:
        return [row for row in csv.DictReader(handle)]


def best_so_far(run_dir, monitor=MONITOR):
    """The best ``monitor`` value in ``history.csv``, or None."""
    values = []
    for row in read_history(run_dir):
        try:
            value = float(row.get(monitor) or "nan")
        except ValueError:
            continue
        if math.isfinite(value):
            values.append(value)
    return max(values) if values else None


def set_aside_damaged_models(run_dir):
    """Before a resume: moves a damaged ``best.keras``/``last.keras`` to ``*.damaged`` so that
    the run writes new ones; returns the names moved."""
    moved = []
    for name in MODEL_FILES:
        path = os.path.join(run_dir, name)
        if os.path.exists(path) and not is_readable_model_file(path):
            os.replace(path, path + ".damaged")
            moved.append(name)
    return moved


def prepare_to_train(run_dir, record, log=None):
    """Before a run starts or resumes (its lock held; the chief only): deletes what killed writes
    left half-done, sets aside damaged ``best.keras``/``last.keras`` (a warning each, through
    ``log``, default print) and writes ``record`` as ``config.yaml``."""
    log = log or (lambda line: print(line, flush=True))
    remove_partial_files(run_dir)
    for name in set_aside_damaged_models(run_dir):
        log(f"warning: {name} in {run_dir} was damaged; moved to {name}.damaged")
    write_config(run_dir, record)


def remove_partial_files(run_dir):
    """Before a resume (the lock held): deletes the temporary files of writes a killed run
    never finished (``.<name>.partial-<pid>...``); returns their names."""
    removed = []
    for folder in (run_dir, os.path.join(run_dir, BACKUP_DIR)):
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if name.startswith(".") and ".partial-" in name:
                os.remove(os.path.join(folder, name))
                removed.append(name)
    return removed


# --------------------------------------------------------------------------- the lock


@contextlib.contextmanager
def locked(run_dir):
    """Holds an exclusive lock on ``run_dir`` for the block (one ``train`` per directory)."""
    import fcntl

    os.makedirs(run_dir, exist_ok=True)
    handle = open(os.path.join(run_dir, LOCK_FILE), "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirectoryError(
                f"Another `eca-keras train` is running in {run_dir}; wait for it to finish or "
                "use another --model-dir."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


# --------------------------------------------------------------------------- callbacks


def callbacks(run_dir, chief=True, monitor=MONITOR):
    """The Keras callbacks that write (chief) or only read (other workers) a run directory;
    ``best.keras`` is the model of the highest ``monitor`` (a log key, higher is better).

    Order matters: the history row of an epoch is written before the backup that marks the
    epoch done, so a kill between the two makes the resumed run repeat the epoch and replace
    its row, never lose it.
    """
    import keras

    backup = os.path.join(run_dir, BACKUP_DIR)
    if not chief:
        return [_backup_class()(backup, restore_only=True), keras.callbacks.TerminateOnNaN()]
    return [
        keras.callbacks.TerminateOnNaN(),
        _history_class()(os.path.join(run_dir, HISTORY_FILE)),
        keras.callbacks.TensorBoard(os.path.join(run_dir, LOGS_DIR)),
        _checkpoint_class()(
            os.path.join(run_dir, BEST_MODEL), monitor=monitor, best=best_so_far(run_dir, monitor)
        ),
        _checkpoint_class()(os.path.join(run_dir, LAST_MODEL)),
        _backup_class()(backup),
    ]


def fit(model, data, validation_data, epochs, steps_per_epoch, callbacks, verbose="auto"):
    """``model.fit`` on a run's pipeline (which shuffles itself), ending after the batch on
    Ctrl-C (:func:`stop_when_interrupted`); returns the History."""
    with stop_when_interrupted() as stop:
        return model.fit(
            data,
            validation_data=validation_data,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            shuffle=False,  # Keras would warn that its own shuffling is ignored
            callbacks=[*callbacks, stop],
            verbose=verbose,
        )


@contextlib.contextmanager
def stop_when_interrupted():
    """Yields a Keras callback for ``fit`` that ends training cleanly on Ctrl-C (SIGINT).

    Ctrl-C raises KeyboardInterrupt as usual, and also sets a flag that the callback checks
    after every batch and epoch. The flag is what stops a run whose KeyboardInterrupt was raised
    inside a garbage-collector callback, where Python prints "Exception ignored" and carries on
    (TensorFlow imports JAX, which has one). Outside the main thread, or where SIGINT is ignored
    (a job started in the background), the signal is left alone.
    """
    flag = threading.Event()
    callback = _interrupt_class()(flag)
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(
        signal.SIGINT
    ) in (signal.SIG_IGN, None):
        yield callback
        return

    def interrupt(signum, frame):
        flag.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield callback
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt_class():
    import keras

    class StopWhenInterrupted(keras.callbacks.Callback):
        """Raises KeyboardInterrupt after the batch (or epoch) during which ``flag`` was set."""

        def __init__(self, flag):
            super().__init__()
            self.flag = flag

        def _check(self, *args, **kwargs):
            if self.flag.is_set():
                raise KeyboardInterrupt

        on_train_batch_end = on_test_batch_end = on_epoch_end = _check

    return StopWhenInterrupted


def _checkpoint_class():
    import keras

    class AtomicCheckpoint(keras.callbacks.Callback):
        """Saves the model each epoch (or when ``monitor`` improves on ``best``), atomically."""

        def __init__(self, path, monitor=None, best=None):
            super().__init__()
            self.path, self.monitor, self.best = path, monitor, best

        def on_epoch_end(self, epoch, logs=None):
            if self.monitor is not None:
                value = (logs or {}).get(self.monitor)
                if value is None or not math.isfinite(float(value)):
                    return
                if self.best is not None and float(value) <= self.best:
                    return
                self.best = float(value)
            save_model_atomically(self.model, self.path)

    return AtomicCheckpoint


def _history_class():
    import keras

    class History(keras.callbacks.Callback):
        """``history.csv``: one row per completed epoch, exactly once across resumes (rows of
        epochs the resumed run repeats are dropped when it starts)."""

        def __init__(self, path):
            super().__init__()
            self.path = path
            self.keys = None
            self.started = False

        def on_epoch_begin(self, epoch, logs=None):
            # The first epoch of this run (after the backup set where to resume): rows of it and
            # later epochs are left from a run killed before its backup; they will be redone.
            if self.started:
                return
            self.started = True
            rows = read_history(os.path.dirname(self.path))
            kept = [row for row in rows if _epoch_of(row) < epoch]
            self.keys = list(rows[0]) if rows else None
            if len(kept) != len(rows):
                self._write(kept)

        def on_epoch_end(self, epoch, logs=None):
            row = {"epoch": epoch, **{key: _number(value) for key, value in (logs or {}).items()}}
            rows = read_history(os.path.dirname(self.path))
            if self.keys is None:
                self.keys = ["epoch", *sorted(key for key in row if key != "epoch")]
            self._write([*rows, row])

        def _write(self, rows):
            text = io.StringIO()
            writer = csv.DictWriter(text, self.keys or ["epoch"], extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
            write_atomically(self.path, text.getvalue())

    return History


def _epoch_of(row):
    try:
        return int(float(row.get("epoch", "")))
    except ValueError:
        return -1


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _backup_class():
    import keras

    class Backup(keras.callbacks.BackupAndRestore):
        """Keras' BackupAndRestore, written atomically: each epoch's weights go to a new file
        that a JSON record (renamed into place last) points to, so the weights and the epoch
        they belong to are never out of step. ``restore_only``: a non-chief worker reads the
        chief's backup and never writes."""

        def __init__(self, backup_dir, restore_only=False):
            super().__init__(backup_dir, delete_checkpoint=False)
            self.restore_only = restore_only
            self._record = os.path.join(backup_dir, "state.json")

        def _load_model(self):
            if not os.path.isfile(self._record):
                return
            with open(self._record) as handle:
                state = json.load(handle)
            if not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)
            self.model.load_weights(os.path.join(self.backup_dir, state["weights"]))
            self.model._initial_epoch = int(state["epoch"])

        def _save_model(self):
            if self.restore_only:
                return
            os.makedirs(self.backup_dir, exist_ok=True)
            weights = f"epoch-{self._current_epoch:05d}.weights.h5"
            save_atomically(self.model.save_weights, os.path.join(self.backup_dir, weights))
            state = {"epoch": self._current_epoch, "weights": weights}
            write_atomically(self._record, json.dumps(state) + "\n")
            for name in os.listdir(self.backup_dir):  # the weights no record points to
                if name.startswith("epoch-") and name != weights:
                    os.remove(os.path.join(self.backup_dir, name))

        def on_train_end(self, logs=None):
            pass  # the backup stays: a finished run re-run is recognised as done

    return Backup
