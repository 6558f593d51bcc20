"""The ``model.fit`` driver behind ``eca-keras train``.

Everything a run produces goes under ``model_dir``: ``config.yaml`` (the resolved config),
``history.csv`` (appended across resumes), ``logs/`` (TensorBoard), ``best.keras`` and
``last.keras``, and ``backup/`` (Keras' BackupAndRestore state). Running the same command again
after a crash or a preemption, even SIGKILL, resumes from the last completed epoch. Under
multi-worker training only the chief writes these files; the other workers read the backup.
"""

import csv
import math
import os

import keras
import yaml

from eca_keras.applications import get_model, model_info
from eca_keras.training import data, distribute, recipes


def default_model_dir(config):
    dataset = str(config["dataset"]).replace("tfds:", "").strip("/").replace("/", "_")
    return os.path.join(
        "runs", f"{os.path.basename(str(config['model']))}-{os.path.basename(dataset)}"
    )


def build_model(config, num_classes):
    """A registered backbone with a head for ``num_classes``, or a saved ``.keras`` model.

    The head (``avg_pool`` [-> ``top_dropout``] -> ``predictions``, float32 logits) is always
    built for the dataset; pretrained weights (``imagenet`` or a file) fill the backbone, which
    ``freeze_backbone`` freezes (its BatchNorm layers then run in inference mode).
    """
    name, size = config["model"], config["image_size"]
    if str(name).endswith(".keras"):
        model = keras.saving.load_model(name)
        classes = model.output_shape[-1]
        if classes != num_classes:
            raise ValueError(
                f"The model {name} has a head of {classes} classes but the dataset has "
                f"{num_classes}. To fine-tune it on this dataset, start from a registered model "
                "(--model NAME --weights <its .weights.h5>) so that the head is rebuilt."
            )
        return model
    info = model_info(name)
    backbone = get_model(
        name,
        weights=config["weights"],
        include_top=False,
        pooling="avg",
        input_shape=(size, size, 3),
        attention=config.get("attention", True),
    )
    if config["freeze_backbone"]:
        if config["weights"] is None:
            raise ValueError("freeze_backbone needs pretrained weights (--weights imagenet|FILE)")
        backbone.trainable = False
    x = backbone.output
    if info.head_dropout:
        x = keras.layers.Dropout(info.head_dropout, name="top_dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="predictions", dtype="float32")(x)
    return keras.Model(backbone.input, outputs, name=f"{name}_{num_classes}")


OPTIMIZERS = {"sgd": keras.optimizers.SGD, "adamw": keras.optimizers.AdamW}


def make_optimizer(config, steps_per_epoch, global_batch):
    """The recipe's optimizer (``sgd``: momentum, nesterov; ``adamw``) on its LR schedule."""
    settings = dict(config["optimizer"])
    name = settings.pop("name", "sgd")
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer.name must be one of {sorted(OPTIMIZERS)}; received {name!r}")
    return OPTIMIZERS[name](
        learning_rate=recipes.learning_rate_schedule(config, steps_per_epoch, global_batch),
        weight_decay=config["weight_decay"] or None,
        **settings,
    )


def _best_so_far(history_path, monitor):
    """The best ``monitor`` value in an existing history.csv, so a resumed run keeps best.keras."""
    if not os.path.exists(history_path):
        return None
    with open(history_path) as handle:
        values = [float(row[monitor]) for row in csv.DictReader(handle) if row.get(monitor)]
    return max(values) if values else None


class _RestoreOnlyBackup(keras.callbacks.BackupAndRestore):
    """A non-chief worker restores the chief's backup but never writes or deletes it."""

    def _save_model(self):
        pass

    def on_train_end(self, logs=None):
        pass


def callbacks_for(model_dir, chief):
    backup_dir = os.path.join(model_dir, "backup")
    if not chief:
        return [_RestoreOnlyBackup(backup_dir), keras.callbacks.TerminateOnNaN()]
    history = os.path.join(model_dir, "history.csv")
    return [
        keras.callbacks.BackupAndRestore(
            backup_dir, double_checkpoint=True, delete_checkpoint=False
        ),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(history, append=True),
        keras.callbacks.TensorBoard(os.path.join(model_dir, "logs")),
        keras.callbacks.ModelCheckpoint(
            os.path.join(model_dir, "best.keras"),
            monitor="val_accuracy",
            mode="max",
            save_best_only=True,
            initial_value_threshold=_best_so_far(history, "val_accuracy"),
        ),
        keras.callbacks.ModelCheckpoint(os.path.join(model_dir, "last.keras")),
    ]


def _steps_per_epoch(config, splits, global_batch):
    if config["steps_per_epoch"]:
        return int(config["steps_per_epoch"])
    size = splits.train_size
    if size is None:
        size = sum(1 for _ in splits.train)  # file-backed data of unknown size: count once
    steps = size // global_batch
    if steps < 1:
        raise ValueError(
            f"The training split has {size} examples, fewer than one global batch of {global_batch}"
        )
    return steps


def train(config, verbose="auto"):
    """Trains as ``config`` (a resolved recipe) says; returns a summary dict."""
    config = recipes.validate(dict(config))
    config["model_dir"] = config["model_dir"] or default_model_dir(config)
    model_dir = config["model_dir"]
    strategy = distribute.create_strategy(config["strategy"], config["tpu"])
    chief = distribute.is_chief(strategy)
    global_batch = distribute.global_batch_size(config["batch_size"], strategy)
    print(f"strategy: {distribute.describe(strategy)}; global batch {global_batch}", flush=True)

    keras.utils.set_random_seed(config["seed"])
    keras.config.set_dtype_policy(config["precision"])
    splits = data.load_splits(
        config["dataset"],
        config["data_dir"],
        config["validation_fraction"],
        config["seed"],
        config["num_classes"],
    )
    steps = _steps_per_epoch(config, splits, global_batch)
    train_data = data.train_pipeline(
        splits, config["image_size"], global_batch, config["augment"], seed=config["seed"]
    ).repeat()
    validation_data = data.eval_pipeline(splits, data.eval_config(config), global_batch)
    if chief:
        os.makedirs(model_dir, exist_ok=True)
        with open(os.path.join(model_dir, "config.yaml"), "w") as handle:
            record = {
                **config,
                "num_classes": splits.num_classes,
                "class_names": splits.class_names,
            }
            yaml.safe_dump(record, handle, sort_keys=False)

    with strategy.scope():
        model = build_model(config, splits.num_classes)
        optimizer = make_optimizer(config, steps, global_batch)
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.CategoricalCrossentropy(
                from_logits=True, label_smoothing=config["label_smoothing"]
            ),
            metrics=[
                keras.metrics.CategoricalAccuracy(name="accuracy"),
                keras.metrics.TopKCategoricalAccuracy(min(5, splits.num_classes), name="top5"),
            ],
            jit_compile=bool(config["jit_compile"]),
        )
        # The optimizer's slots now: created inside the first traced step (Keras' default
        # without a strategy), they make TensorFlow trace that step twice, ~20 s on 2 cores.
        model.optimizer.build(model.trainable_variables)
    print(
        f"model {config['model']} ({model.count_params():,} parameters), "
        f"{splits.num_classes} classes, {steps} steps per epoch, model dir {model_dir}",
        flush=True,
    )
    with distribute.multi_worker_fit_fix(strategy):
        history = model.fit(
            train_data,
            validation_data=validation_data,
            epochs=config["epochs"],
            steps_per_epoch=steps,
            shuffle=False,  # the pipeline shuffles; Keras warns that its own would be ignored
            callbacks=callbacks_for(model_dir, chief),
            verbose=verbose,
        )
    losses = history.history.get("loss", [])
    if any(not math.isfinite(loss) for loss in losses):
        raise RuntimeError(
            "Training stopped: the loss became NaN (TerminateOnNaN). Lower the learning rate or "
            "use float32 precision; the last good state is in "
            f"{os.path.join(model_dir, 'backup')}"
        )
    accuracies = history.history.get("val_accuracy") or [math.nan]
    best = _best_so_far(os.path.join(model_dir, "history.csv"), "val_accuracy") if chief else None
    return {
        "model_dir": model_dir,
        "epochs_run": len(history.history.get("loss", [])),
        "final_val_accuracy": accuracies[-1],
        "best_val_accuracy": best,
        "num_classes": splits.num_classes,
        "class_names": splits.class_names,
    }
