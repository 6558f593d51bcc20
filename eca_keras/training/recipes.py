"""Training recipes: YAML configs shipped in the package, command-line overrides, LR schedules.

A recipe is a YAML mapping (``recipes/*.yaml``); any key can be overridden with ``key=value``
(dotted keys reach nested mappings, values are parsed as YAML). The run-time keys below are
added to every recipe.
"""

import copy
import os
from importlib import resources

import keras
import yaml

from eca_keras.training.distribute import scale_learning_rate

RUN_DEFAULTS = {
    "model_dir": None,  # default: runs/<model>-<dataset>
    "data_dir": None,
    "strategy": "auto",
    "tpu": None,
    "precision": "float32",
    "jit_compile": False,
    "seed": 0,
    "num_classes": None,  # TFRecords: the number of classes, when not counted from the data
    "validation_fraction": 0.2,
    "freeze_backbone": False,
    "attention": True,  # False: the plain twin (no ECA), for ablations
    "steps_per_epoch": None,  # cap the steps of an epoch (quick runs); None = the whole dataset
}
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
SCHEDULES = ("step", "exponential", "cosine", "constant")


def recipe_names():
    """The recipes shipped in the package."""
    folder = resources.files(__package__).joinpath("recipes")
    return sorted(entry.name[:-5] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def load_recipe(name_or_path):
    """A shipped recipe by name (``eca_resnet_imagenet``) or a YAML file, with run defaults."""
    if os.path.isfile(name_or_path):
        with open(name_or_path) as handle:
            recipe = yaml.safe_load(handle)
    elif name_or_path in recipe_names():
        path = resources.files(__package__).joinpath("recipes", f"{name_or_path}.yaml")
        recipe = yaml.safe_load(path.read_text())
    else:
        raise ValueError(
            f"Unknown recipe {name_or_path!r}: use one of {recipe_names()} or a YAML file path"
        )
    if not isinstance(recipe, dict):
        raise ValueError(f"Recipe {name_or_path!r} is not a YAML mapping")
    return {**copy.deepcopy(RUN_DEFAULTS), **recipe}


def apply_overrides(config, overrides):
    """Sets ``key=value`` (or ``a.b=value``) pairs; unknown keys are an error, not a typo lost."""
    config = copy.deepcopy(config)
    for override in overrides:
        key, separator, raw = override.partition("=")
        if not separator:
            raise ValueError(f"Overrides look like key=value; received {override!r}")
        *parents, leaf = key.strip().split(".")
        node = config
        for parent in parents:
            if not isinstance(node.get(parent), dict):
                raise ValueError(f"Unknown config key {key!r} (no mapping {parent!r})")
            node = node[parent]
        if leaf not in node:
            raise ValueError(f"Unknown config key {key!r}; known here: {sorted(node)}")
        node[leaf] = parse_value(raw)
    return validate(config)


def parse_value(raw):
    """A YAML value, with the numbers YAML 1.1 leaves as strings (``1e-4``, ``1e12``) as floats."""
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def validate(config):
    if config["precision"] not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; received {config['precision']!r}")
    schedule = config["learning_rate"].get("schedule")
    if schedule not in SCHEDULES:
        raise ValueError(
            f"learning_rate.schedule must be one of {SCHEDULES}; received {schedule!r}"
        )
    for key in ("epochs", "batch_size", "image_size"):
        if not isinstance(config[key], int) or config[key] < 1:
            raise ValueError(f"{key} must be a positive integer; received {config[key]!r}")
    return config


def base_learning_rate(config, global_batch):
    """The linear scaling rule: ``base * global_batch / reference_batch``."""
    rate = config["learning_rate"]
    return scale_learning_rate(
        rate["base"], global_batch, rate.get("reference_batch", global_batch)
    )


def learning_rate_schedule(config, steps_per_epoch, global_batch):
    """The recipe's schedule as a Keras ``LearningRateSchedule`` over optimizer steps.

    ``step``: ``lr * decay_rate ** floor(epoch / decay_epochs)``; ``exponential``:
    ``lr * decay_rate ** epoch``; ``cosine``: linear warmup for ``warmup_epochs`` from 0, then
    cosine decay to 0 at the last epoch; ``constant``.
    """
    rate = config["learning_rate"]
    lr = base_learning_rate(config, global_batch)
    schedules = keras.optimizers.schedules
    kind = rate["schedule"]
    if kind == "step":
        return schedules.ExponentialDecay(
            lr, rate["decay_epochs"] * steps_per_epoch, rate["decay_rate"], staircase=True
        )
    if kind == "exponential":
        return schedules.ExponentialDecay(lr, steps_per_epoch, rate["decay_rate"], staircase=True)
    if kind == "cosine":
        warmup = int(rate.get("warmup_epochs", 0) * steps_per_epoch)
        decay = max(1, config["epochs"] * steps_per_epoch - warmup)
        if not warmup:
            return schedules.CosineDecay(lr, decay)
        return schedules.CosineDecay(0.0, decay, warmup_target=lr, warmup_steps=warmup)
    return lr
