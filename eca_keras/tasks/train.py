"""``eca-keras train --task detection|segmentation``: ``model.fit`` of keras-hub's RetinaNet or
DeepLabV3 on an ECA backbone, into a run directory of :mod:`eca_keras.runs`.

The run's files are those of classification (``config.yaml``, ``history.csv``, ``best.keras``,
``last.keras``, ``backup/``, ``logs/``), so re-running the same command resumes. ``best.keras`` is
the epoch of the best ``val_map`` (COCO mAP@[.5:.95] by COCOeval on the validation images) for
detection, of the best ``val_mean_iou`` for segmentation.
"""

import math
import os

import keras

from eca_keras import runs
from eca_keras.data import detection as detection_data
from eca_keras.data.annotated import IGNORE_LABEL
from eca_keras.data.segmentation import segmentation_batches
from eca_keras.tasks import detection, models, segmentation, settings

MONITORS = {"detection": "val_map", "segmentation": "val_mean_iou"}


def default_model_dir(config):
    """``runs/<model>-<dataset>-<task>``."""
    dataset = os.path.splitext(os.path.basename(str(config["dataset"])))[0]
    return os.path.join("runs", f"{config['model']}-{dataset}-{config['task']}")


def build_model(config, num_classes):
    """The detector or segmenter ``config`` describes (the segmenter's classes count the
    background)."""
    common = {
        "weights": config["weights"],
        "attention": config["attention"],
        "freeze_backbone": config["freeze_backbone"],
    }
    if config["task"] == "detection":
        return models.build_detector(
            config["model"],
            num_classes,
            config["image_size"],
            min_level=config["min_level"],
            max_level=config["max_level"],
            head_convs=config["head_convs"],
            anchor_size=config["anchor_size"],
            max_detections=config["max_detections"],
            **common,
        )
    return models.build_segmenter(
        config["model"],
        num_classes + 1,
        config["image_size"],
        pooling_level=config["pooling_level"],
        low_level=config["low_level"],
        **common,
    )


def make_optimizer(config, steps_per_epoch):
    """AdamW with a linear warmup to ``learning_rate``, then a cosine decay to 0."""
    total = steps_per_epoch * config["epochs"]
    warmup = min(int(round(config["warmup_epochs"] * steps_per_epoch)), total - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else config["learning_rate"],
        total - warmup,
        warmup_target=config["learning_rate"] if warmup else None,
        warmup_steps=warmup,
    )
    return keras.optimizers.AdamW(
        schedule, weight_decay=config["weight_decay"] or None, global_clipnorm=config["clipnorm"]
    )


def train(task, values=None, overrides=(), verbose="auto"):
    """Trains ``task`` with the settings ``values`` and ``overrides`` (see
    :mod:`eca_keras.tasks.settings`); returns a summary dict."""
    config = settings.resolve(task, values, overrides)
    config["model_dir"] = config["model_dir"] or default_model_dir(config)
    with runs.locked(config["model_dir"]):
        runs.check_same_run(config["model_dir"], config)
        return _train(config, verbose)


def _train(config, verbose):
    task, model_dir = config["task"], config["model_dir"]
    keras.utils.set_random_seed(config["seed"])
    train_set, validation_set = detection_data.load_splits(
        config["dataset"],
        config["images"],
        config["validation"],
        config["validation_images"],
        config["seed"],
    )
    size, batch = config["image_size"], config["batch_size"]
    steps = config["steps_per_epoch"] or len(train_set) // batch
    if steps < 1:
        raise ValueError(
            f"The training split has {len(train_set)} images, fewer than one batch of {batch}: "
            "lower --batch-size"
        )
    record = {
        **config,
        "num_classes": train_set.num_classes,
        "class_names": train_set.class_names,
    }
    runs.prepare_to_train(model_dir, record)  # as classification's runs: the same directory

    model = build_model(config, train_set.num_classes)
    optimizer = make_optimizer(config, steps)
    if task == "detection":
        model.compile(optimizer=optimizer)  # keras-hub's: focal loss and Huber, summed
        data = detection_data.detection_batches(
            train_set, size, batch, shuffle=True, seed=config["seed"], repeat=True
        )
        validation, extra = None, [detection.MapCallback(validation_set, batch)]
    else:
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, ignore_class=IGNORE_LABEL
            ),
            metrics=[segmentation.mean_iou_metric(train_set.num_classes + 1)],
        )
        data = segmentation_batches(
            train_set, size, batch, shuffle=True, seed=config["seed"], repeat=True
        )
        validation, extra = segmentation_batches(validation_set, size, batch), []
    model.optimizer.build(model.trainable_variables)  # slots now: one trace of the step
    print(
        f"{task}: {config['model']} backbone, {model.count_params():,} parameters, "
        f"{train_set.num_classes} classes, {len(train_set)} training and {len(validation_set)} "
        f"validation images at {size}x{size}, {steps} steps per epoch, model dir {model_dir}",
        flush=True,
    )
    callbacks = [*extra, *runs.callbacks(model_dir, monitor=MONITORS[task])]
    history = runs.fit(model, data, validation, config["epochs"], steps, callbacks, verbose)
    losses = history.history.get("loss", [])
    if any(not math.isfinite(loss) for loss in losses):
        raise RuntimeError(
            "Training stopped: the loss became NaN (TerminateOnNaN). Lower the learning rate; "
            f"the last good state is in {os.path.join(model_dir, runs.BACKUP_DIR)}"
        )
    return {
        "model_dir": model_dir,
        "epochs_run": len(losses),
        "monitor": MONITORS[task],
        "best": runs.best_so_far(model_dir, MONITORS[task]),
        "num_classes": train_set.num_classes,
        "class_names": train_set.class_names,
    }
