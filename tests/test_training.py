"""Training: recipes and schedules, data sources, the fit driver end to end through the CLI."""

import csv
import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from local_ports import free_ports

from eca_keras import runs
from eca_keras.data import classification as data
from eca_keras.training import recipes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = ["--set", "steps_per_epoch=3", "--set", "validation_fraction=0.05", "--batch-size", "16"]


def cli(*args, env=None, **kwargs):
    environment = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "eca_keras.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
        **kwargs,
    )


def history_rows(model_dir):
    with open(os.path.join(model_dir, "history.csv")) as handle:
        return list(csv.DictReader(handle))


# ---- recipes and schedules -------------------------------------------------------------------


def lr_at(config, epoch, steps_per_epoch=100, global_batch=None):
    global_batch = global_batch or config["batch_size"]
    schedule = recipes.learning_rate_schedule(config, steps_per_epoch, global_batch)
    return float(schedule(epoch * steps_per_epoch)) if callable(schedule) else schedule


def test_shipped_recipes():
    assert recipes.recipe_names() == [
        "digits",
        "eca_mobilenet_v2_imagenet",
        "eca_resnet_imagenet",
        "finetune",
    ]


def test_resnet_recipe_schedule():
    config = recipes.load_recipe("eca_resnet_imagenet")
    assert config["weight_decay"] == 1e-4 and config["optimizer"]["momentum"] == 0.9
    expected = {0: 0.1, 29: 0.1, 30: 0.01, 59: 0.01, 60: 0.001, 90: 1e-4, 99: 1e-4}
    for epoch, lr in expected.items():
        assert lr_at(config, epoch) == pytest.approx(lr, rel=1e-5)
    assert lr_at(config, 0, global_batch=1024) == pytest.approx(0.4)  # 0.1 per 256 images


def test_mobilenet_recipe_schedule():
    config = recipes.load_recipe("eca_mobilenet_v2_imagenet")
    assert (config["epochs"], config["batch_size"], config["weight_decay"]) == (400, 96, 4e-5)
    for epoch in (0, 1, 10, 100, 399):
        assert lr_at(config, epoch) == pytest.approx(0.045 * 0.98**epoch, rel=1e-4)


def test_finetune_recipe_schedule_warmup_then_cosine():
    config = recipes.load_recipe("finetune")
    assert config["weights"] == "imagenet" and config["learning_rate"]["warmup_epochs"] == 1
    assert lr_at(config, 0) == pytest.approx(0.0, abs=1e-9)
    assert lr_at(config, 0.5) == pytest.approx(0.005, rel=1e-3)  # halfway through warmup
    assert lr_at(config, 1) == pytest.approx(0.01, rel=1e-4)  # warmup target
    assert lr_at(config, 5.5) == pytest.approx(0.005, rel=1e-3)  # half of the cosine
    assert lr_at(config, 10) == pytest.approx(0.0, abs=1e-7)


def test_overrides():
    config = recipes.load_recipe("eca_resnet_imagenet")
    changed = recipes.apply_overrides(
        config, ["learning_rate.base=0.2", "epochs=3", "seed=7", "weight_decay=1e-4"]
    )
    assert changed["learning_rate"]["base"] == 0.2 and changed["epochs"] == 3
    assert changed["weight_decay"] == 1e-4  # YAML 1.1 alone would leave "1e-4" a string
    assert config["epochs"] == 100  # the original is untouched
    with pytest.raises(ValueError, match="Unknown config key 'learning_rate.bass'"):
        recipes.apply_overrides(config, ["learning_rate.bass=1"])
    with pytest.raises(ValueError, match="key=value"):
        recipes.apply_overrides(config, ["epochs"])
    with pytest.raises(ValueError, match="precision must be one of"):
        recipes.apply_overrides(config, ["precision=float8"])
    with pytest.raises(ValueError, match="Unknown recipe"):
        recipes.load_recipe("no_such_recipe")


def test_attention_false_trains_the_plain_twin():
    from eca_keras.layers import ECA
    from eca_keras.training.train import build_model

    recipe = recipes.load_recipe("digits")
    assert recipe["attention"] is True
    with_eca = build_model(recipe, 10)
    plain = build_model(recipes.apply_overrides(recipe, ["attention=false"]), 10)
    assert sum(isinstance(layer, ECA) for layer in with_eca.layers) == 17
    assert not any(isinstance(layer, ECA) for layer in plain.layers)
    eca_weights = sum(layer.count_params() for layer in with_eca.layers if isinstance(layer, ECA))
    assert with_eca.count_params() - plain.count_params() == eca_weights == 31  # one k per block


def test_optimizers_are_a_table():
    from eca_keras.training.train import make_optimizer

    config = recipes.load_recipe("eca_resnet_imagenet")
    sgd = make_optimizer(config, steps_per_epoch=10, global_batch=256)
    assert type(sgd).__name__ == "SGD" and sgd.momentum == 0.9 and sgd.weight_decay == 1e-4
    digits = recipes.load_recipe("digits")
    clipped = make_optimizer(digits, steps_per_epoch=10, global_batch=64)
    assert clipped.nesterov and clipped.global_clipnorm == 5.0
    digits["optimizer"] = {"name": "adamw"}
    assert type(make_optimizer(digits, 10, 64)).__name__ == "AdamW"
    config["optimizer"] = {"name": "lion"}
    with pytest.raises(ValueError, match="optimizer.name must be one of"):
        make_optimizer(config, 10, 256)


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_weight_decay_is_decoupled(name):
    """README: ``w -= lr * wd * w`` each step, apart from the gradient: with a zero gradient
    (and no momentum yet) one step multiplies the weights by ``1 - lr * wd``."""
    from eca_keras.training.train import make_optimizer

    config = recipes.load_recipe("digits")
    config["optimizer"] = {"name": name}
    config["learning_rate"] = {"schedule": "constant", "base": 0.5, "reference_batch": 64}
    config["weight_decay"] = 0.1
    optimizer = make_optimizer(recipes.validate(config), steps_per_epoch=10, global_batch=64)
    weights = keras.Variable(np.array([2.0, -4.0], "float32"))
    optimizer.apply_gradients([(np.zeros(2, "float32"), weights)])
    np.testing.assert_allclose(weights.numpy(), [2.0 * 0.95, -4.0 * 0.95], rtol=1e-6)


def test_command_line_flags_reach_the_config(tmp_path, monkeypatch):
    """--recipe FILE, --learning-rate, --label-smoothing, --precision, --jit-compile and the
    rest land in the config train() runs (what train does with them: the tests below)."""
    import yaml

    from eca_keras import cli as command_line
    from eca_keras.training import train as train_module

    recipe = recipes.load_recipe("digits")
    recipe.update(epochs=4, optimizer={"name": "adamw"})
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in recipe.items() if k in recipes.RECIPE_KEYS}))
    seen = {}

    def capture(config, verbose):
        seen.update(config)
        return {"best_val_accuracy": None, "epochs_run": 1, "model_dir": "x"}

    monkeypatch.setattr(train_module, "train", capture)
    code = command_line.main(["train", "--recipe", str(path), "--learning-rate", "0.05",
                              "--label-smoothing", "0.1", "--precision", "mixed_bfloat16",
                              "--jit-compile", "--skip-bad-images", "--batch-size", "32",
                              "--set", "augment.flip=true"])  # fmt: skip
    assert code == 0
    assert (seen["epochs"], seen["optimizer"], seen["learning_rate"]["base"]) == (
        4, {"name": "adamw"}, 0.05)  # fmt: skip
    assert (seen["label_smoothing"], seen["precision"], seen["jit_compile"]) == (
        0.1, "mixed_bfloat16", True)  # fmt: skip
    assert seen["skip_bad_images"] and seen["batch_size"] == 32 and seen["augment"]["flip"]


def test_a_training_split_smaller_than_a_batch_is_refused(tmp_path):
    """Even with steps_per_epoch set (a run of zero steps would be marked finished)."""
    from eca_keras.training.train import train

    config = recipes.load_recipe("digits")
    config.update(model_dir=str(tmp_path / "run"), batch_size=2048, steps_per_epoch=3)
    with pytest.raises(ValueError, match="1438 examples, fewer than one global batch of 2048"):
        train(config, verbose=0)
    assert os.listdir(tmp_path / "run") == [".lock"]  # no config.yaml, nothing else


# ---- data sources ----------------------------------------------------------------------------


def test_digits_source_and_pipelines():
    splits = data.load_splits("digits")
    assert (splits.train_size, splits.validation_size, splits.num_classes) == (1438, 359, 10)
    image, label = next(iter(splits.train))
    assert image.shape == (32, 32, 3) and image.dtype == tf.uint8 and 0 <= int(label) < 10
    batch, labels = next(iter(data.train_pipeline(splits, 32, 8, {"flip": True})))
    assert batch.shape == (8, 32, 32, 3) and labels.shape == (8, 10)
    assert -2.2 < float(tf.reduce_min(batch)) and float(tf.reduce_max(batch)) < 2.7  # normalised
    evaluation = data.eval_pipeline(splits, runs.eval_config({"image_size": 32}), 100)
    assert sum(int(b.shape[0]) for b, _ in evaluation) == 359  # every example, once


def write_image_folder(root, classes=("cat", "dog", "owl"), per_class=6, size=40, nested=False):
    rng = np.random.default_rng(0)
    splits = ("train", "val") if nested else ("",)
    for split in splits:
        for index, name in enumerate(classes):
            folder = os.path.join(root, split, name)
            os.makedirs(folder, exist_ok=True)
            for i in range(per_class):
                pixels = np.full((size, size + 8, 3), 60 * index, "uint8")
                pixels += rng.integers(0, 40, pixels.shape, dtype="uint8")
                tf.io.write_file(os.path.join(folder, f"{i}.png"), tf.io.encode_png(pixels))
    return root


def test_folder_split_is_80_20_and_fixed_by_the_seed(tmp_path):
    folder = write_image_folder(str(tmp_path / "flat"), per_class=10)
    first, again = data.load_splits(folder), data.load_splits(folder)
    other = data.load_splits(folder, seed=1)
    assert (first.train_size, first.validation_size) == (24, 6)
    assert first.validation_paths == again.validation_paths != other.validation_paths
    assert first.train_paths == again.train_paths
    every = sorted(first.train_paths + first.validation_paths)
    assert every == sorted(set(every)) and len(every) == 30  # disjoint, complete
    pairs = zip(first.validation, again.validation, strict=True)
    assert all(np.array_equal(a.numpy(), b.numpy()) for (a, _), (b, _) in pairs)


def test_image_folder_sources(tmp_path):
    flat = data.load_splits(write_image_folder(str(tmp_path / "flat")))
    assert (flat.num_classes, flat.train_size + flat.validation_size) == (3, 18)
    assert flat.class_names == ["cat", "dog", "owl"]
    nested = data.load_splits(write_image_folder(str(tmp_path / "nested"), nested=True))
    assert (nested.train_size, nested.validation_size) == (18, 18)
    image, _ = next(iter(nested.validation))
    assert image.shape == (40, 48, 3)
    crop = data.random_resized_crop(tf.cast(image, tf.float32), 24)
    assert crop.shape == (24, 24, 3)
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir()
    with pytest.raises(ValueError, match="at least two class sub-folders with images"):
        data.load_splits(str(tmp_path / "empty"))


def write_tfrecords(folder, count=12, classes=3):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(1)
    for split in ("train", "validation"):
        path = os.path.join(folder, f"{split}-00000-of-00001")
        with tf.io.TFRecordWriter(path) as writer:
            for i in range(count):
                pixels = rng.integers(0, 255, (36, 36, 3), dtype="uint8")
                feature = {
                    "image/encoded": tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[tf.io.encode_jpeg(pixels).numpy()])
                    ),
                    "image/class/label": tf.train.Feature(
                        int64_list=tf.train.Int64List(value=[i % classes])
                    ),
                }
                example = tf.train.Example(features=tf.train.Features(feature=feature))
                writer.write(example.SerializeToString())
    return os.path.join(folder, "train-*")


def test_tfrecord_source(tmp_path):
    splits = data.load_splits(write_tfrecords(str(tmp_path)))
    assert splits.num_classes == 3
    assert sum(1 for _ in splits.validation) == 12
    (tmp_path / "only").mkdir()
    os.rename(tmp_path / "train-00000-of-00001", tmp_path / "only" / "train-00000-of-00001")
    with pytest.raises(ValueError, match="No validation files"):
        data.load_splits(str(tmp_path / "only" / "train-*"))
    with pytest.raises(ValueError, match="Unknown dataset"):
        data.load_splits("no/such/place")


def prepare_tfds(data_dir):
    """Writes a tiny image dataset with the real TFDS builder API (nothing is downloaded)."""
    import tensorflow_datasets as tfds

    # Not registered: reading it back goes through TFDS' read-from-files path, as for a dataset
    # a user prepared elsewhere (and the class can be defined again by the next test).
    class TinyShapes(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Image(shape=(36, 36, 3)),
                        "label": tfds.features.ClassLabel(names=["dark", "light"]),
                    }
                ),
                supervised_keys=("image", "label"),
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(16, 0), "test": self._generate_examples(8, 1)}

        def _generate_examples(self, count, seed):
            rng = np.random.default_rng(seed)
            for i in range(count):
                label = i % 2
                pixels = rng.integers(0, 100, (36, 36, 3), dtype="uint8") + 150 * label
                yield f"{seed}-{i}", {"image": pixels.astype("uint8"), "label": label}

    TinyShapes(data_dir=str(data_dir)).download_and_prepare()
    return "tfds:tiny_shapes"


def test_tfds_source(tmp_path):
    name = prepare_tfds(tmp_path)
    splits = data.load_splits(name, data_dir=str(tmp_path))
    assert (splits.num_classes, splits.class_names) == (2, ["dark", "light"])
    assert (splits.train_size, splits.validation_size) == (16, 8)  # "test" serves as validation
    image, label = next(iter(splits.train))
    assert image.shape == (36, 36, 3) and int(label) in (0, 1)
    with pytest.raises(ValueError, match="TFDS dataset 'no_such_dataset' was not found"):
        data.load_splits("tfds:no_such_dataset", data_dir=str(tmp_path))


# ---- the driver, end to end ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.xdist_group("digits_run")  # with test_export's: the run is trained once
def test_default_run_learns_then_evaluates_and_resumes_as_done(digits_run, tmp_path):
    """The main job (the session's ``digits_run``): it learns, writes every artifact, evaluates
    alike, predicts, and re-running it does nothing."""
    run = digits_run
    for artifact in ("config.yaml", "history.csv", "best.keras", "last.keras", "backup", "logs"):
        assert os.path.exists(os.path.join(run, artifact)), artifact
    rows = history_rows(run)
    assert [int(row["epoch"]) for row in rows] == list(range(15))
    best = max(float(row["val_accuracy"]) for row in rows)
    assert best >= 0.95  # 10 classes: chance is 0.1

    evaluated = cli("evaluate", "--model", os.path.join(run, "best.keras"), "--dataset", "digits",
                    "--json")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    report = json.loads(evaluated.stdout)
    assert report["n"] == 359 and report["top1"] == pytest.approx(100 * best, abs=0.01)

    # predict with the run's model: its own class names, the same answer as in-process.
    splits = data.load_splits("digits")
    image, label = next(iter(splits.validation))
    picture = str(tmp_path / "digit.png")
    tf.io.write_file(picture, tf.io.encode_png(image))
    predicted = cli("predict", "--model", os.path.join(run, "best.keras"), picture)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    lines = predicted.stdout.strip().splitlines()
    assert lines[0] == picture and len(lines) == 6
    import keras

    model = keras.saving.load_model(os.path.join(run, "best.keras"))
    transform = runs.eval_config(runs.read_config(run))  # the run's: crop 1.0
    batch = next(iter(data.eval_pipeline(splits, transform, 1)))[0]
    expected = int(np.argmax(model.predict(batch, verbose=0)))
    assert lines[1].split()[1] == str(expected)  # "1. <class name> <class index> <score>"

    again = cli("train", "--model-dir", run)  # the same command: nothing to redo
    assert again.returncode == 0 and "0 epochs this run" in again.stdout
    assert "strategy: default" in again.stdout
    assert len(history_rows(run)) == 15


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus(tmp_path):
    run = str(tmp_path / "run")
    result = cli("train", "--model-dir", run, "--epochs", 1, "--strategy", "mirrored",
                 "--logical-cpus", 2, *QUICK)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MirroredStrategy: 2 replicas" in result.stdout
    odd = cli("train", "--model-dir", run, "--strategy", "mirrored", "--logical-cpus", 2,
              "--batch-size", 15)  # fmt: skip
    assert odd.returncode == 1 and "global batch 15 is not divisible by 2 replicas" in odd.stderr


def start_two_workers(run, extra_env=None):  # without the Keras fix: test_distribute.py
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    command = [sys.executable, "-m", "eca_keras.cli", "train", "--model-dir", run, "--epochs", "2",
               *QUICK]  # fmt: skip
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), **(extra_env or {}))
        processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))  # fmt: skip
    return processes


def finish(processes, timeout):
    """Exit codes and outputs; a worker still running at ``timeout`` is killed (code None, and
    its output says so)."""
    deadline = time.monotonic() + timeout
    results = []
    for process in processes:
        try:
            output = process.communicate(timeout=max(1, deadline - time.monotonic()))[0]
            results.append((process.returncode, output))
        except subprocess.TimeoutExpired:
            process.kill()
            output = process.communicate()[0] + f"\n[killed: still running after {timeout} s]"
            results.append((None, output))
    return results


@pytest.mark.slow
def test_two_workers_share_one_model_dir(tmp_path):
    run = str(tmp_path / "run")
    results = finish(start_two_workers(run), timeout=900)  # a bound on a hang, not a timing
    for code, output in results:
        assert code == 0, output[-3000:]
    assert "MultiWorkerMirroredStrategy: 2 replicas (worker 0 of 2, chief)" in results[0][1]
    assert "(worker 1 of 2)" in results[1][1]
    assert [int(row["epoch"]) for row in history_rows(run)] == [0, 1]  # written once, by the chief


@pytest.mark.slow
def test_fine_tune_frozen_backbone_on_a_folder(tmp_path):
    import keras

    from eca_keras.applications import ECAMobileNetV2

    pretrained = ECAMobileNetV2(weights=None, input_shape=(32, 32, 3))
    weights = str(tmp_path / "pretrained.weights.h5")
    pretrained.save_weights(weights)
    folder = write_image_folder(str(tmp_path / "images"), nested=True)
    (tmp_path / "images" / "train" / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    run = str(tmp_path / "run")
    result = cli("train", "--recipe", "finetune", "--model", "eca_mobilenet_v2", "--weights",
                 weights, "--freeze-backbone", "--dataset", folder, "--image-size", 32,
                 "--model-dir", run, "--epochs", 1, "--skip-bad-images", *QUICK,
                 "--batch-size", 8)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"warning: skipping 1 of 19 image files of {folder}/train that cannot be decoded: " in (
        result.stderr
    )
    one_line_per_epoch(result.stdout, epochs=1)
    model = keras.saving.load_model(os.path.join(run, "last.keras"))
    assert model.output_shape == (None, 3)
    for name in ("conv1_conv", "block5_eca", "top_bn"):
        trained, original = model.get_layer(name), pretrained.get_layer(name)
        for after, before in zip(trained.get_weights(), original.get_weights(), strict=True):
            np.testing.assert_array_equal(after, before)

    mismatch = cli("train", "--model", os.path.join(run, "last.keras"), "--dataset", "digits",
                   "--model-dir", str(tmp_path / "other"))  # fmt: skip
    assert mismatch.returncode == 1
    assert "has a head of 3 classes but the dataset has 10" in mismatch.stderr

    from eca_keras.evaluate import evaluate_model

    renamed = write_image_folder(str(tmp_path / "animals"), classes=("ant", "bee", "owl"))
    with pytest.raises(ValueError, match="classes differ from the dataset's: 'cat' vs 'ant', "):
        evaluate_model(os.path.join(run, "last.keras"), renamed)


def one_line_per_epoch(stdout, epochs):
    """What `eca-keras train` prints into a log file (stdout not a terminal): per epoch its
    number and one line of figures; no progress bar, carriage return or colour code."""
    assert "\x1b" not in stdout and "\r" not in stdout
    lines = stdout.splitlines()
    figures = [line for line in lines if " - loss: " in line or "- accuracy: " in line]
    numbered = sum(line.startswith("Epoch ") for line in lines)  # Keras numbers 2 epochs or more
    assert len(figures) == epochs and numbered == (epochs if epochs > 1 else 0)


@pytest.mark.slow
def test_tfds_and_tfrecord_training(tmp_path):
    name = prepare_tfds(tmp_path / "tfds")
    # Batches of 4: these datasets have 12 training examples (a batch of 16 would train nothing).
    result = cli("train", "--dataset", name, "--data-dir", tmp_path / "tfds", "--image-size", 32,
                 "--model-dir", tmp_path / "run_tfds", "--epochs", 1, *QUICK,
                 "--batch-size", 4)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 steps per epoch" in result.stdout
    one_line_per_epoch(result.stdout, epochs=1)
    glob = write_tfrecords(str(tmp_path / "records"))
    result = cli("train", "--dataset", glob, "--image-size", 32, "--model-dir",
                 tmp_path / "run_records", "--epochs", 1, *QUICK, "--batch-size", 4)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 classes" in result.stdout and "3 steps per epoch" in result.stdout


@pytest.mark.parametrize(
    "args,env,message",
    [
        (["--dataset", "imagenet_on_mars"], {}, "Unknown dataset 'imagenet_on_mars'"),
        (["--strategy", "multi_worker"], {"TF_CONFIG": "{not json"}, "TF_CONFIG"),
    ],
    ids=["unknown-dataset", "malformed-tf-config"],
)
def test_training_errors_are_clear(tmp_path, args, env, message):
    result = cli("train", "--model-dir", tmp_path / "run", *args, env=env)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert message in result.stderr


def test_a_nan_loss_stops_training_after_one_trace_of_the_step(tmp_path, monkeypatch):
    """A diverging run stops with a clear error. The step was traced once: the optimizer's slots
    exist before ``fit`` (created inside the first trace, they make TensorFlow trace twice)."""
    import keras

    from eca_keras.training.train import train

    traces = []
    train_step = keras.Model.train_step

    def counted(model, batch):  # in graph mode the Python body runs only while tracing
        traces.append(1)
        return train_step(model, batch)

    monkeypatch.setattr(keras.Model, "train_step", counted)
    config = recipes.load_recipe("digits")
    config.update(model_dir=str(tmp_path / "run"), epochs=2, batch_size=16)
    config = recipes.apply_overrides(
        config, ["learning_rate.base=1e12", "steps_per_epoch=3", "validation_fraction=0.05"]
    )
    with pytest.raises(RuntimeError, match="the loss became NaN"):
        train(config, verbose=0)
    assert len(traces) == 1


@pytest.mark.slow
def test_mixed_precision_and_xla_training(tmp_path, monkeypatch):
    """--precision mixed_float16: layers compute in float16 on float32 variables, float32
    logits, Keras scales the loss; --label-smoothing reaches the loss. --jit-compile: the steps
    are compiled by XLA (a small .keras model continued: XLA compiles ECA-MobileNetV2's
    training step for minutes on a CPU)."""
    from eca_keras.training.train import train

    seen = []

    class Probe(keras.callbacks.Callback):  # the model as fit trained it
        def on_train_end(self, logs=None):
            model = self.model
            smoothing = model.loss.get_config()["label_smoothing"]
            seen.append((type(model.optimizer).__name__, model.jit_compile, smoothing))

    callbacks = runs.callbacks
    monkeypatch.setattr(runs, "callbacks", lambda *args: [*callbacks(*args), Probe()])
    quick = ["steps_per_epoch=2", "validation_fraction=0.05"]
    config = recipes.load_recipe("digits")
    config.update(model_dir=str(tmp_path / "mixed"), epochs=1, batch_size=16)
    overrides = [*quick, "precision=mixed_float16", "label_smoothing=0.1"]
    summary = train(recipes.apply_overrides(config, overrides), 0)
    keras.config.set_dtype_policy("float32")
    assert np.isfinite(float(history_rows(summary["model_dir"])[0]["loss"]))
    model = keras.saving.load_model(os.path.join(summary["model_dir"], "last.keras"))
    assert model.get_layer("conv1_conv").dtype_policy.name == "mixed_float16"
    assert model.get_layer("conv1_conv").kernel.dtype == "float32"
    assert model.get_layer("predictions").dtype_policy.name == "float32"  # float32 logits
    assert seen == [("LossScaleOptimizer", False, 0.1)]

    config.update(
        model=small_keras_model(tmp_path / "small.keras", 10), model_dir=str(tmp_path / "xla")
    )
    summary = train(recipes.apply_overrides(config, [*quick, "jit_compile=true"]), 0)
    assert np.isfinite(float(history_rows(summary["model_dir"])[0]["loss"]))
    assert seen[1] == ("SGD", True, 0.0)


def small_keras_model(path, classes):
    """A small ECA convnet saved as a .keras file (train continues it): fast to trace."""
    from eca_keras.layers import ECA

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = ECA(kernel_size=3)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(classes)(x)).save(path)
    return str(path)


def test_an_image_that_does_not_decode_is_named_during_training(tmp_path):
    """A PNG cut in half passes the scan (its first bytes are a PNG's) and fails inside fit:
    the error names it."""
    from eca_keras.training.train import train

    folder = write_image_folder(str(tmp_path / "images"), per_class=4)
    whole = tmp_path / "images" / "cat" / "0.png"
    cut = tmp_path / "images" / "cat" / "cut.png"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    config = recipes.load_recipe("digits")
    config.update(model=small_keras_model(tmp_path / "small.keras", 3), dataset=folder,
                  model_dir=str(tmp_path / "run"), epochs=1, batch_size=4,
                  validation_fraction=0.25)  # fmt: skip
    with pytest.raises(data.BadImagesError, match=f"{cut}: cannot be decoded as images "):
        train(config, verbose=0)


def test_a_saved_model_keeps_its_precision(tmp_path):
    """--precision cannot change a .keras model's layers: refused, not ignored."""
    from eca_keras.training.train import build_model

    config = recipes.load_recipe("digits")
    config.update(model=small_keras_model(tmp_path / "small.keras", 10))
    assert build_model(config, 10).output_shape == (None, 10)
    config["precision"] = "mixed_float16"
    with pytest.raises(ValueError, match="computes in float32; a saved model keeps the precision"):
        build_model(config, 10)
