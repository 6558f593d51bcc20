"""The run directory (eca_keras.runs): atomic writes, history rows exactly once, damaged and
half-written files after a kill, the lock, the same-run check; and a run interrupted (Ctrl-C),
then killed while writing a checkpoint, then finished."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from eca_keras import cli, runs
from eca_keras.training import recipes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = ["--set", "steps_per_epoch=3", "--set", "validation_fraction=0.05", "--batch-size", "16"]


def digest(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def small_model():
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


# ---- writing ---------------------------------------------------------------------------------


def test_a_failed_write_keeps_the_old_file_and_leaves_no_partial(tmp_path, monkeypatch):
    path = tmp_path / "history.csv"
    runs.write_atomically(str(path), "epoch\n0\n")
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        runs.write_atomically(str(path), "epoch\n0\n1\n")
    assert path.read_text() == "epoch\n0\n" and os.listdir(tmp_path) == ["history.csv"]


def test_a_failed_model_save_keeps_the_old_model(tmp_path, monkeypatch):
    path = str(tmp_path / "best.keras")
    runs.save_model_atomically(small_model(), path)
    before = digest(path)
    save = keras.Model.save

    def save_half_then_fail(model, target, *args, **kwargs):
        save(model, target, *args, **kwargs)
        with open(target, "r+b") as handle:
            handle.truncate(os.path.getsize(target) // 2)
        raise OSError("killed")

    monkeypatch.setattr(keras.Model, "save", save_half_then_fail)
    with pytest.raises(OSError, match="killed"):
        runs.save_model_atomically(small_model(), path)
    assert digest(path) == before and runs.is_readable_model_file(path)
    assert os.listdir(tmp_path) == ["best.keras"]


def test_damaged_models_are_set_aside_and_partials_removed(tmp_path):
    run = tmp_path / "run"
    (run / "backup").mkdir(parents=True)
    runs.save_model_atomically(small_model(), str(run / "last.keras"))
    (run / "best.keras").write_bytes(b"")  # what a kill left behind in older versions
    (run / ".best.partial-123.keras").write_bytes(b"PK\x03\x04half")
    (run / "backup" / ".epoch-00003.partial-123.weights.h5").write_bytes(b"half")
    with pytest.warns(UserWarning, match="best.keras is damaged"):
        assert runs.model_file(str(run)) == str(run / "last.keras")  # the complete one
    assert runs.remove_partial_files(str(run)) == [
        ".best.partial-123.keras",
        ".epoch-00003.partial-123.weights.h5",
    ]
    assert runs.set_aside_damaged_models(str(run)) == ["best.keras"]
    assert sorted(os.listdir(run)) == ["backup", "best.keras.damaged", "last.keras"]
    assert os.listdir(run / "backup") == []
    (run / "last.keras").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(FileNotFoundError, match="neither best.keras nor last.keras"):
        with pytest.warns(UserWarning):
            runs.model_file(str(run))


def test_prepare_to_train_cleans_up_then_writes_the_config(tmp_path):
    """What both training drivers (classification, detection/segmentation) do before a run."""
    run = tmp_path / "run"
    (run / "backup").mkdir(parents=True)
    (run / "best.keras").write_bytes(b"")
    (run / "backup" / ".epoch-00001.partial-7.weights.h5").write_bytes(b"half")
    said = []
    runs.prepare_to_train(str(run), {"model": "eca_resnet18", "epochs": 3}, log=said.append)
    assert said == [f"warning: best.keras in {run} was damaged; moved to best.keras.damaged"]
    assert sorted(os.listdir(run)) == ["backup", "best.keras.damaged", "config.yaml"]
    assert os.listdir(run / "backup") == []
    assert runs.read_config(str(run)) == {"model": "eca_resnet18", "epochs": 3}


def fit_epochs(run, epochs):
    """What fit does with a fresh History callback of ``run`` over ``epochs`` (a process that
    starts at ``epochs[0]``, the epoch its backup says comes next)."""
    callback = runs._history_class()(os.path.join(run, runs.HISTORY_FILE))
    for epoch in epochs:
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1), "val_accuracy": 0.1 * epoch})


@pytest.mark.parametrize("killed", ["after the backup", "between the row and the backup"])
def test_history_has_each_epoch_once_across_resumes(tmp_path, killed):
    run = str(tmp_path)
    fit_epochs(run, [0, 1])  # killed after the row of epoch 1, before or after its backup
    resumed_from = 2 if killed == "after the backup" else 1
    fit_epochs(run, range(resumed_from, 4))
    rows = runs.read_history(run)
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2, 3]
    assert [float(row["loss"]) for row in rows] == [1.0, 0.5, 1 / 3, 0.25]


def test_the_history_row_is_written_before_the_backup(tmp_path):
    kinds = [type(callback).__name__ for callback in runs.callbacks(str(tmp_path))]
    assert kinds.index("History") < kinds.index("Backup")
    assert kinds.index("AtomicCheckpoint") < kinds.index("Backup")
    assert "History" not in [type(c).__name__ for c in runs.callbacks(str(tmp_path), False)]


# ---- the lock and the same-run check ----------------------------------------------------------


def run_cli(argv, capsys):
    """``eca-keras`` in this process: exit code and stderr."""
    try:
        code = cli.main([str(arg) for arg in argv])
    except SystemExit as exit:
        code = exit.code
    return code, capsys.readouterr().err


def test_a_second_train_in_a_busy_run_directory_fails_in_one_line(tmp_path, capsys):
    run = str(tmp_path / "run")
    with runs.locked(run):
        with pytest.raises(runs.RunDirectoryError, match="Another `eca-keras train` is running"):
            with runs.locked(run):
                pass
        code, err = run_cli(["train", "--model-dir", run], capsys)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"eca-keras train: error: Another `eca-keras train` is running in {run}")
    assert not os.path.exists(os.path.join(run, "config.yaml"))
    with runs.locked(run):  # released: free again
        pass


def test_a_rerun_with_another_model_is_refused_before_config_is_touched(tmp_path, capsys):
    run = str(tmp_path / "run")
    os.makedirs(run)
    runs.write_config(run, recipes.load_recipe("digits"))
    before = digest(os.path.join(run, "config.yaml"))
    code, err = run_cli(["train", "--model-dir", run, "--model", "eca_resnet18"], capsys)
    assert code == 1 and err.count("\n") == 1
    assert "holds another run (model: 'eca_mobilenet_v2' there, 'eca_resnet18' now)" in err
    assert digest(os.path.join(run, "config.yaml")) == before
    code, err = run_cli(["train", "--model-dir", run, "--image-size", 48], capsys)
    assert code == 1 and "image_size: 32 there, 48 now" in err


# ---- interrupted, killed while writing a checkpoint, finished ----------------------------------

# Runs `eca-keras train` with Keras' model.save writing half a file, then SIGKILL: a kill in
# the middle of a checkpoint write, at the first checkpoint of the run. $MARKER gets the path.
DIE_WRITING_A_CHECKPOINT = """
import os, signal, sys
import keras
save = keras.Model.save
def save_half_then_die(model, path, *args, **kwargs):
    save(model, path, *args, **kwargs)
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) // 2)
    with open(os.environ["MARKER"], "w") as marker:
        marker.write(path)
    os.kill(os.getpid(), signal.SIGKILL)
keras.Model.save = save_half_then_die
from eca_keras.cli import main
sys.exit(main(sys.argv[1:]))
"""


def environment(**extra):
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    return {**env, **extra}


def completed_epochs(run):
    """The epochs the backup marks done: where a resumed run starts."""
    with open(os.path.join(run, "backup", "state.json")) as handle:
        return json.load(handle)["epoch"]


def best_accuracy_of_the_file(run):
    """The validation accuracy of the run's best.keras, measured here."""
    from eca_keras.data import classification

    config = runs.read_config(run)
    splits = classification.load_splits("digits", validation_fraction=0.05, seed=config["seed"])
    model = keras.saving.load_model(os.path.join(run, "best.keras"))
    batches = classification.eval_pipeline(splits, runs.eval_config(config), 128)
    correct = sum(
        int(np.sum(np.argmax(model.predict_on_batch(x), 1) == np.argmax(y, 1))) for x, y in batches
    )
    return correct / splits.validation_size


@pytest.mark.slow
def test_interrupted_then_killed_mid_checkpoint_then_resumed(tmp_path):
    run = str(tmp_path / "run")
    args = ["train", "--model-dir", run, "--epochs", "6", *QUICK]

    # 1. Ctrl-C after two epochs: one line, exit 130. (A suite started in the background by a
    # shell inherits SIGINT ignored, and so would the run: give it the default, as a terminal does.)
    interrupted = subprocess.Popen(
        [sys.executable, "-m", "eca_keras.cli", *args], cwd=ROOT, env=environment(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 900  # a generous bound on a hang, not a timing
    while interrupted.poll() is None and len(runs.read_history(run)) < 2:
        assert time.monotonic() < deadline, "no two epochs in 900 s"
        time.sleep(0.2)
    assert interrupted.poll() is None, "the run ended before it could be interrupted"
    interrupted.send_signal(signal.SIGINT)
    stderr = interrupted.communicate(timeout=300)[1]
    assert interrupted.returncode == 130, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == (
        "eca-keras train: interrupted; re-run the same command to resume"
    )
    assert "Traceback" not in stderr
    assert runs.remove_partial_files(run) == []  # nothing half-written was left

    # 2. Killed (SIGKILL) while writing the next checkpoint: the old file stays whole.
    done = completed_epochs(run)
    before = {name: digest(os.path.join(run, name)) for name in runs.MODEL_FILES}
    marker = tmp_path / "marker"
    killed = subprocess.run(
        [sys.executable, "-c", DIE_WRITING_A_CHECKPOINT, *args], cwd=ROOT,
        env=environment(MARKER=str(marker)), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    partial = marker.read_text()
    target = os.path.basename(partial).split(".partial-")[0].lstrip(".") + ".keras"
    assert os.path.dirname(partial) == run and target in runs.MODEL_FILES
    assert os.path.getsize(partial) > 0 and not runs.is_readable_model_file(partial)
    assert digest(os.path.join(run, target)) == before[target]  # untouched, readable
    assert runs.is_readable_model_file(os.path.join(run, target))
    assert completed_epochs(run) == done  # the killed epoch is not marked done

    # 3. The same command again: resumes from the backup and finishes.
    resumed = subprocess.run(
        [sys.executable, "-m", "eca_keras.cli", *args], cwd=ROOT, env=environment(),
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Epoch {done + 1}/6" in resumed.stdout and "Epoch 1/6" not in resumed.stdout
    assert not os.path.exists(partial)
    rows = runs.read_history(run)
    assert [int(row["epoch"]) for row in rows] == list(range(6))  # each epoch once
    best = max(float(row["val_accuracy"]) for row in rows)
    # best.keras is the best epoch's model, whether that epoch ran before or after the resumes
    # (90 validation images; one near-tie may round the other way in another batch size).
    assert abs(best_accuracy_of_the_file(run) - best) <= 1 / 90 + 1e-6


# --------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_swallowed_mid_batch_still_stops_fit_after_that_batch():
    """A KeyboardInterrupt raised where something swallows it (as Python does inside a
    garbage-collector callback) must still end ``fit``: the flag is checked after the batch."""
    batches = []

    class SwallowedCtrlC(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            batches.append(batch)
            if batch == 2:
                try:
                    os.kill(os.getpid(), signal.SIGINT)  # delivered to the main thread, now
                    time.sleep(1)  # never finishes: the handler raises here
                except KeyboardInterrupt:
                    pass  # swallowed

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.zeros((64, 4), "float32"), np.zeros((64, 1), "float32")
    # Python's own handler, as in a terminal (a test worker may have SIGINT ignored).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with runs.stop_when_interrupted() as stop:
                callbacks = [SwallowedCtrlC(), stop]
                model.fit(x, y, batch_size=4, epochs=3, callbacks=callbacks, verbose=0)
        assert batches == [0, 1, 2]  # stopped after the interrupted batch, not 45 batches later
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_is_left_alone_where_it_is_ignored():
    """A job started in the background ignores SIGINT; the run must not start catching it."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with runs.stop_when_interrupted():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
