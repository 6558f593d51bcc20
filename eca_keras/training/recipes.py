"""Training recipes: YAML configs shipped in the package, command-line overrides, LR schedules.

A recipe is a YAML mapping (``recipes/*.yaml``); any key can be overridden with ``key=value``
(dotted keys reach nested mappings, values are parsed as YAML). The run-time keys of
:data:`RUN_DEFAULTS` are added to every recipe. :func:`validate` checks every key's type and range
before anything runs, so a typo or a bad value is one clear line, not a failure deep in ``fit``.
"""

import copy
import numbers
import os
from importlib import resources

import yaml

from eca_keras.preprocessing import INTERPOLATIONS

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
    "skip_bad_images": False,  # image folders: leave out files that cannot be decoded (warned)
}
RECIPE_KEYS = (
    "model",
    "weights",
    "dataset",
    "image_size",
    "epochs",
    "batch_size",
    "optimizer",
    "learning_rate",
    "weight_decay",
    "label_smoothing",
    "augment",
    "eval",
)
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
SCHEDULES = ("step", "exponential", "cosine", "constant")
OPTIMIZER_NAMES = ("sgd", "adamw")
MIN_IMAGE_SIZE = 32


class RecipeError(ValueError):
    """A recipe or an override that cannot be trained with."""


def recipe_names():
    """The recipes shipped in the package."""
    folder = resources.files(__package__).joinpath("recipes")
    return sorted(entry.name[:-5] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def default_recipe():
    """The recipe ``eca-keras train`` runs with no arguments (``digits``)."""
    return load_recipe("digits")


def load_recipe(name_or_path):
    """A shipped recipe by name (``eca_resnet_imagenet``) or a YAML file, with run defaults."""
    try:
        if os.path.isfile(name_or_path):
            with open(name_or_path) as handle:
                recipe = yaml.safe_load(handle)
        elif name_or_path in recipe_names():
            path = resources.files(__package__).joinpath("recipes", f"{name_or_path}.yaml")
            recipe = yaml.safe_load(path.read_text())
        else:
            raise RecipeError(
                f"Unknown recipe {name_or_path!r}: use one of {recipe_names()} or a YAML file path"
            )
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        problem = getattr(error, "problem", None) or "malformed YAML"
        raise RecipeError(f"Recipe {name_or_path!r} is not valid YAML{line}: {problem}") from None
    if not isinstance(recipe, dict):
        raise RecipeError(f"Recipe {name_or_path!r} is not a YAML mapping")
    missing = [key for key in RECIPE_KEYS if key not in recipe]
    if missing:
        raise RecipeError(f"Recipe {name_or_path!r} lacks the key(s) {', '.join(missing)}")
    return {**copy.deepcopy(RUN_DEFAULTS), **recipe}


def apply_overrides(config, overrides):
    """Sets ``key=value`` (or ``a.b=value``) pairs; unknown keys are an error, not a typo lost."""
    config = copy.deepcopy(config)
    for override in overrides:
        key, separator, raw = override.partition("=")
        if not separator:
            raise RecipeError(f"Overrides look like key=value; received {override!r}")
        *parents, leaf = key.strip().split(".")
        node = config
        for parent in parents:
            if not isinstance(node.get(parent), dict):
                raise RecipeError(f"Unknown config key {key!r} (no mapping {parent!r})")
            node = node[parent]
        if leaf not in node:
            raise RecipeError(f"Unknown config key {key!r}; known here: {sorted(node)}")
        node[leaf] = parse_value(raw)
    return validate(config)


def parse_value(raw):
    """A YAML value, with the numbers YAML 1.1 leaves as strings (``1e-4``, ``1e12``) as floats."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


# --------------------------------------------------------------------------- validation


def _fail(key, expected, value):
    raise RecipeError(f"{key} must be {expected}; received {value!r}")


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _integer(config, key, minimum, optional=False, name=None):
    value = config.get(key)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(name or key, f"an integer >= {minimum}" + (" or null" if optional else ""), value)


def _number(mapping, key, low, high, name=None, low_open=False, high_open=False, default=None):
    value = mapping.get(key, default)
    name = name or key
    if not _is_number(value):
        _fail(name, "a number", value)
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if below or above:
        interval = ("(" if low_open else "[") + f"{low}, {high}" + (")" if high_open else "]")
        _fail(name, f"a number in {interval}", value)


def _boolean(config, key):
    if not isinstance(config.get(key), bool):
        _fail(key, "true or false", config.get(key))


def _mapping(config, key):
    if not isinstance(config.get(key), dict):
        _fail(key, "a mapping", config.get(key))
    return config[key]


def _range_pair(mapping, key, name, low, high):
    value = mapping.get(key)
    if value is None:
        return
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(_is_number(v) for v in value)
    ):
        _fail(name, "a pair [low, high] of numbers", value)
    if not (low < value[0] <= value[1] <= high):
        _fail(name, f"a pair with {low} < low <= high <= {high}", value)


def validate(config):
    """Checks every key of a resolved config; raises :class:`RecipeError` on the first problem."""
    unknown = sorted(set(config) - set(RECIPE_KEYS) - set(RUN_DEFAULTS))
    if unknown:
        raise RecipeError(f"Unknown config key(s) {', '.join(unknown)}")
    missing = [key for key in (*RECIPE_KEYS, *RUN_DEFAULTS) if key not in config]
    if missing:
        raise RecipeError(f"The config lacks the key(s) {', '.join(missing)}")
    if not isinstance(config["model"], str) or not config["model"]:
        _fail("model", "a registered model name or a .keras file", config["model"])
    if config["weights"] is not None and not isinstance(config["weights"], str):
        _fail("weights", "imagenet, a weights file, a tag or null", config["weights"])
    if not config["dataset"]:
        raise RecipeError(
            "No dataset given: use --dataset digits, tfds:<name>, a folder or a TFRecord glob"
        )
    if not isinstance(config["dataset"], str):
        _fail("dataset", "a string", config["dataset"])
    _integer(config, "image_size", MIN_IMAGE_SIZE)
    _integer(config, "epochs", 1)
    _integer(config, "batch_size", 1)
    _integer(config, "steps_per_epoch", 1, optional=True)
    _integer(config, "num_classes", 2, optional=True)
    _integer(config, "seed", 0)
    _number(config, "weight_decay", 0, float("inf"), high_open=True)
    _number(config, "label_smoothing", 0, 1, high_open=True)
    _number(config, "validation_fraction", 0, 1, low_open=True, high_open=True)
    for key in ("jit_compile", "freeze_backbone", "attention", "skip_bad_images"):
        _boolean(config, key)
    if config["precision"] not in PRECISIONS:
        _fail("precision", f"one of {PRECISIONS}", config["precision"])
    optimizer = _mapping(config, "optimizer")
    if optimizer.get("name", "sgd") not in OPTIMIZER_NAMES:
        _fail("optimizer.name", f"one of {OPTIMIZER_NAMES}", optimizer.get("name"))
    _validate_learning_rate(_mapping(config, "learning_rate"))
    augment = _mapping(config, "augment")
    _range_pair(augment, "crop_scale", "augment.crop_scale", 0, 1)
    _range_pair(augment, "crop_ratio", "augment.crop_ratio", 0, float("inf"))
    if not isinstance(augment.get("flip", True), bool):
        _fail("augment.flip", "true or false", augment.get("flip"))
    evaluation = _mapping(config, "eval")
    _number(evaluation, "crop_pct", 0, 1, "eval.crop_pct", low_open=True, default=0.875)
    if evaluation.get("interpolation", "bilinear") not in INTERPOLATIONS:
        _fail("eval.interpolation", f"one of {INTERPOLATIONS}", evaluation.get("interpolation"))
    return config


def _validate_learning_rate(rate):
    schedule = rate.get("schedule")
    if schedule not in SCHEDULES:
        _fail("learning_rate.schedule", f"one of {SCHEDULES}", schedule)
    _number(rate, "base", 0, float("inf"), "learning_rate.base", low_open=True, high_open=True)
    if "reference_batch" in rate:
        _integer(rate, "reference_batch", 1, name="learning_rate.reference_batch")
    if schedule == "step":
        _number(rate, "decay_epochs", 0, float("inf"), "learning_rate.decay_epochs", True, True)
    if schedule in ("step", "exponential"):
        _number(rate, "decay_rate", 0, 1, "learning_rate.decay_rate", low_open=True)
    if schedule == "cosine":
        _number(rate, "warmup_epochs", 0, float("inf"), "learning_rate.warmup_epochs", default=0)


# --------------------------------------------------------------------------- learning rate


def scale_learning_rate(base_lr: float, global_batch: int, reference_batch: int = 256) -> float:
    """Linear scaling rule (Goyal et al. 2017): ``base_lr * global_batch / reference_batch``."""
    if not base_lr > 0 or not global_batch > 0 or not reference_batch > 0:
        raise ValueError(
            "scale_learning_rate needs positive numbers, got "
            f"base_lr={base_lr!r}, global_batch={global_batch!r}, "
            f"reference_batch={reference_batch!r}"
        )
    return float(base_lr) * global_batch / reference_batch


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
    import keras

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
