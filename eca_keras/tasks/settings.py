"""The settings of a detection or segmentation run: defaults (data), overrides, checks.

``eca-keras train --task detection`` with no other argument trains the embedded default: a
RetinaNet with an ECA-ResNet18 backbone, from scratch, on the digit scenes at 96x96 (a few
minutes on two CPU cores). Every key can be overridden (``--set key=value``); :func:`resolve`
checks every value before anything runs, so a typo is one clear line.
"""

import copy

from eca_keras.training.recipes import parse_value

TASKS = ("detection", "segmentation")
COMMON = {
    "model": "eca_resnet18",  # the backbone: any registered model
    "weights": None,  # imagenet, a weights tag or file: the backbone's pretrained weights
    "attention": True,  # False: the plain twin, for ablations
    "freeze_backbone": False,
    "dataset": "digits",  # or a COCO instances JSON
    "images": None,  # the COCO file's image folder (default: the file's folder)
    "validation": None,  # a COCO file to validate on (default: 20% of the dataset's images)
    "validation_images": None,
    "image_size": 96,  # square input; a multiple of 32
    "epochs": 5,
    "batch_size": 16,
    "learning_rate": 1e-3,  # AdamW, linear warmup then cosine decay to 0
    "warmup_epochs": 0.5,
    "weight_decay": 1e-4,
    "clipnorm": 10.0,  # gradient-norm clipping
    "seed": 0,
    "model_dir": None,  # default: runs/<model>-<dataset>-<task>
    "steps_per_epoch": None,  # cap the steps of an epoch (quick runs)
}
TASK_DEFAULTS = {
    "detection": {
        "min_level": 3,  # the FPN levels the heads see
        "max_level": 5,
        "head_convs": 1,  # 3x3 convolutions per head before its logits (4 in the paper)
        "anchor_size": 2.0,  # anchor side, in strides of its level
        "max_detections": 100,
    },
    "segmentation": {
        "pooling_level": "P4",  # the atrous spatial pyramid pooling's input
        "low_level": "P2",  # the decoder's
    },
}
STRIDE = 32  # the input size must be a multiple of the coarsest level's stride
LEVELS = ("P1", "P2", "P3", "P4", "P5")


class SettingsError(ValueError):
    """Settings that cannot be trained with."""


def defaults(task):
    if task not in TASKS:
        raise SettingsError(f"Unknown task {task!r}: expected one of {', '.join(TASKS)}")
    return {"task": task, **copy.deepcopy(COMMON), **copy.deepcopy(TASK_DEFAULTS[task])}


def resolve(task, values=None, overrides=()):
    """The defaults of ``task``, then ``values`` (a dict, ``None`` values skipped), then
    ``key=value`` ``overrides``; checked."""
    config = defaults(task)
    for key, value in (values or {}).items():
        if value is None:
            continue
        if key not in config:
            raise SettingsError(f"Unknown setting {key!r} for {task}; known: {sorted(config)}")
        config[key] = value
    for override in overrides:
        key, separator, raw = override.partition("=")
        key = key.strip()
        if not separator:
            raise SettingsError(f"Overrides look like key=value; received {override!r}")
        if key not in config or key == "task":
            raise SettingsError(f"Unknown setting {key!r} for {task}; known: {sorted(config)}")
        config[key] = parse_value(raw)
    return check(config)


def _positive(config, key, kind=(int, float), allow_zero=False):
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, kind) or value < 0:
        raise SettingsError(f"{key} must be a non-negative number; received {value!r}")
    if value == 0 and not allow_zero:
        raise SettingsError(f"{key} must be positive; received {value!r}")


def check(config):
    """Raises :class:`SettingsError` for a value that cannot work; returns ``config``."""
    for key in ("image_size", "epochs", "batch_size"):
        _positive(config, key, int)
    for key in ("learning_rate", "clipnorm"):
        _positive(config, key)
    for key in ("warmup_epochs", "weight_decay"):
        _positive(config, key, allow_zero=True)
    if config["steps_per_epoch"] is not None:
        _positive(config, "steps_per_epoch", int)
    if config["image_size"] % STRIDE:
        raise SettingsError(
            f"image_size must be a multiple of {STRIDE} (the stride of P5); "
            f"received {config['image_size']}"
        )
    for key in ("attention", "freeze_backbone"):
        if not isinstance(config[key], bool):
            raise SettingsError(f"{key} must be true or false; received {config[key]!r}")
    if config["freeze_backbone"] and config["weights"] is None:
        raise SettingsError("freeze_backbone needs pretrained weights (--weights imagenet|FILE)")
    if config["task"] == "detection":
        low, high = config["min_level"], config["max_level"]
        if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high):
            raise SettingsError(
                f"min_level and max_level must be 1 <= min <= max; got {low}, {high}"
            )
        if low > 5:
            raise SettingsError(f"min_level must be a backbone level (P1..P5); received {low}")
        _positive(config, "head_convs", int, allow_zero=True)
        _positive(config, "anchor_size")
        _positive(config, "max_detections", int)
    else:
        for key in ("pooling_level", "low_level"):
            if config[key] not in LEVELS:
                raise SettingsError(
                    f"{key} must be a backbone level ({', '.join(LEVELS)}); "
                    f"received {config[key]!r}"
                )
        if int(config["low_level"][1]) >= int(config["pooling_level"][1]):
            raise SettingsError("low_level must be a finer level (smaller n) than pooling_level")
    return config
