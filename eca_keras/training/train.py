"""The ``model.fit`` driver behind ``eca-keras train``.

Everything a run produces goes under ``model_dir``, in the format of :mod:`eca_keras.runs`.
Running the same command again after a crash or a preemption, even SIGKILL, resumes from the last
completed epoch; a finished run re-run does nothing. Under multi-worker training only the chief
writes these files; the other workers read the backup.
"""

import math
import os

import keras
import tensorflow as tf

from eca_keras import runs
from eca_keras.applications import registry
from eca_keras.data import classification
from eca_keras.training import distribute, recipes


def build_model(config, num_classes):
    """A registered backbone with a head for ``num_classes``, or a saved ``.keras`` model.

    The head (``avg_pool`` [-> ``top_dropout``] -> ``predictions``, float32 logits) is always
    built for the dataset; pretrained weights (``imagenet``, a tag or a file) fill the backbone,
    which ``freeze_backbone`` freezes (its BatchNorm layers then run in inference mode).
    """
    name, size = config["model"], config["image_size"]
    if str(name).endswith(".keras"):
        from eca_keras.models import open_model

        model = open_model(name).keras_model
        saved = _precision_of(model)
        if saved != config["precision"]:
            raise ValueError(
                f"The model {name} computes in {saved}; a saved model keeps the precision of "
                f"its layers, so --precision {config['precision']} cannot apply to it. Pass "
                f"--precision {saved}, or start from a registered model (--model NAME --weights "
                "<its .weights.h5>)"
            )
        classes = model.output_shape[-1]
        if classes != num_classes:
            raise ValueError(
                f"The model {name} has a head of {classes} classes but the dataset has "
                f"{num_classes}. To fine-tune it on this dataset, start from a registered model "
                "(--model NAME --weights <its .weights.h5>) so that the head is rebuilt."
            )
        return model
    info = registry.model_info(name)
    backbone = registry.get_model(
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


def _precision_of(model):
    """The dtype policy most of ``model``'s layers with weights compute in."""
    import collections

    policies = collections.Counter(
        layer.dtype_policy.name for layer in model.layers if layer.weights
    )
    return policies.most_common(1)[0][0] if policies else "float32"


OPTIMIZERS = {"sgd": keras.optimizers.SGD, "adamw": keras.optimizers.AdamW}


def make_optimizer(config, steps_per_epoch, global_batch):
    """The recipe's optimizer (``sgd``: momentum, nesterov; ``adamw``) on its LR schedule."""
    settings = dict(config["optimizer"])
    name = settings.pop("name", "sgd")
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer.name must be one of {sorted(OPTIMIZERS)}; received {name!r}")
    try:
        return OPTIMIZERS[name](
            learning_rate=recipes.learning_rate_schedule(config, steps_per_epoch, global_batch),
            weight_decay=config["weight_decay"] or None,
            **settings,
        )
    except TypeError as error:  # an unknown optimizer setting in the recipe
        raise ValueError(
            f"optimizer settings {settings} are not valid for {name}: {error}"
        ) from None


def _steps_per_epoch(config, splits, global_batch):
    size = splits.train_size
    if size is None and not config["steps_per_epoch"]:
        size = sum(1 for _ in splits.train)  # file-backed data of unknown size: count once
    if size is not None and size < global_batch:
        raise ValueError(
            f"The training split has {size} examples, fewer than one global batch of "
            f"{global_batch}: lower --batch-size"
        )
    if config["steps_per_epoch"]:
        return int(config["steps_per_epoch"])
    return size // global_batch


def train(config, verbose="auto"):
    """Trains as ``config`` (a resolved recipe) says; returns a summary dict."""
    config = recipes.validate(dict(config))
    config["model_dir"] = config["model_dir"] or runs.default_model_dir(config)
    model_dir = config["model_dir"]
    strategy = distribute.create_strategy(config["strategy"], config["tpu"])
    chief = distribute.is_chief(strategy)
    global_batch = distribute.global_batch_size(config["batch_size"], strategy)
    print(f"strategy: {distribute.describe(strategy)}; global batch {global_batch}", flush=True)
    if chief:
        with runs.locked(model_dir):
            runs.check_same_run(model_dir, config)
            return _train(config, strategy, chief, global_batch, verbose)
    return _train(config, strategy, chief, global_batch, verbose)


def _train(config, strategy, chief, global_batch, verbose):
    model_dir = config["model_dir"]
    keras.utils.set_random_seed(config["seed"])
    keras.config.set_dtype_policy(config["precision"])
    splits = classification.load_splits(
        config["dataset"],
        config["data_dir"],
        config["validation_fraction"],
        config["seed"],
        config["num_classes"],
        skip_bad_images=config["skip_bad_images"],
    )
    steps = _steps_per_epoch(config, splits, global_batch)
    evaluation = runs.eval_config(config)
    train_data = classification.train_pipeline(
        splits,
        config["image_size"],
        global_batch,
        config["augment"],
        seed=config["seed"],
        mean=evaluation.mean,
        std=evaluation.std,
    ).repeat()
    validation_data = classification.eval_pipeline(splits, evaluation, global_batch)
    if chief:
        record = {**config, "num_classes": splits.num_classes, "class_names": splits.class_names}
        runs.prepare_to_train(model_dir, record)

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
    try:
        with distribute.multi_worker_fit_fix(strategy):
            history = runs.fit(
                model,
                train_data,
                validation_data,
                config["epochs"],
                steps,
                runs.callbacks(model_dir, chief),
                verbose,
            )
    except tf.errors.InvalidArgumentError as error:
        if not classification.is_decode_error(error):
            raise
        # A file that passed the scan (its first bytes) but does not decode: find and name it.
        print("an image could not be decoded; finding which...", flush=True)
        paths = (splits.train_paths or []) + (splits.validation_paths or [])
        raise classification.name_undecodable(paths, error, config["dataset"]) from None
    losses = history.history.get("loss", [])
    if any(not math.isfinite(loss) for loss in losses):
        raise RuntimeError(
            "Training stopped: the loss became NaN (TerminateOnNaN). Lower the learning rate or "
            "use float32 precision; the last good state is in "
            f"{os.path.join(model_dir, runs.BACKUP_DIR)}"
        )
    accuracies = history.history.get("val_accuracy") or [math.nan]
    best = runs.best_so_far(model_dir) if chief else None
    return {
        "model_dir": model_dir,
        "epochs_run": len(losses),
        "final_val_accuracy": accuracies[-1],
        "best_val_accuracy": best,
        "num_classes": splits.num_classes,
        "class_names": splits.class_names,
    }
