"""One training process for tests/test_distribute.py (run as a script, one per worker).

    python tests/multiworker_worker.py --strategy multi_worker --out DIR    # TF_CONFIG set
    python tests/multiworker_worker.py --strategy mirrored --logical-cpus 2 --out DIR

Trains a tiny ECA convnet with ``model.fit`` (validation data, the driver's callbacks: the
chief writes BackupAndRestore state, CSVLogger and ModelCheckpoint files, other workers only
restore), evaluates, predicts, resumes one more epoch from the backup, and prints one line
``RESULT {json}``; on an exception ``RESULT {"ok": false, ...}`` and exit status 1.

To show that training is synchronous over the global batch, the weights after the first ``fit``
are compared with those of the same model trained without any strategy on the same global
batches (``ref_max_abs_diff``). ``ECA_KERAS_DISABLE_MWMS_FIX=1`` turns the workaround off.
"""

import argparse
import contextlib
import json
import os
import sys
import time
import traceback

START = time.time()
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from eca_keras.training import distribute  # noqa: E402

EXAMPLES, VAL_EXAMPLES, SIZE, CLASSES = 64, 32, 8, 4


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--strategy", default="multi_worker")
    parser.add_argument("--logical-cpus", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument(
        "--nest-only-fix",
        action="store_true",
        help="instead of the workaround, only let strategy.reduce map over nests (shows the "
        "second Keras failure, reduce(..., axis=0) of scalar logs)",
    )
    return parser.parse_args()


def datasets(batch):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.normal(size=(EXAMPLES + VAL_EXAMPLES, SIZE, SIZE, 3)).astype("float32")
    y = rng.integers(0, CLASSES, size=(EXAMPLES + VAL_EXAMPLES,)).astype("int64")
    options = tf.data.Options()  # in-memory data: shard by element between workers
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA

    def make(lo, hi):
        data = tf.data.Dataset.from_tensor_slices((x[lo:hi], y[lo:hi]))
        return data.batch(batch, drop_remainder=True).with_options(options)

    return make(0, EXAMPLES), make(EXAMPLES, EXAMPLES + VAL_EXAMPLES), x[EXAMPLES:]


def build_and_compile():
    import keras

    from eca_keras.layers import ECA

    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            ECA(kernel_size=3),
            keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(CLASSES),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def callbacks(out, chief):
    import keras

    backup = os.path.join(out, "backup")
    if not chief:

        class RestoreOnly(keras.callbacks.BackupAndRestore):
            def _save_model(self):
                pass

            def on_train_end(self, logs=None):
                pass

        return [RestoreOnly(backup)]
    return [
        keras.callbacks.BackupAndRestore(backup, delete_checkpoint=False),
        keras.callbacks.CSVLogger(os.path.join(out, "history.csv"), append=True),
        keras.callbacks.ModelCheckpoint(
            os.path.join(out, "best.keras"),
            monitor="val_accuracy",
            mode="max",
            save_best_only=True,
        ),
        keras.callbacks.ModelCheckpoint(
            os.path.join(out, "last.weights.h5"), save_weights_only=True
        ),
    ]


@contextlib.contextmanager
def nest_only_fix(strategy):
    """Half of distribute.multi_worker_fit_fix: nests reduced leaf by leaf, nothing else."""
    import tensorflow as tf

    original = strategy.reduce

    def reduce(reduce_op, value, axis=None):
        if tf.nest.is_nested(value):
            return tf.nest.map_structure(lambda v: original(reduce_op, v, axis=axis), value)
        return original(reduce_op, value, axis=axis)

    strategy.reduce = reduce
    try:
        yield strategy
    finally:
        del strategy.reduce


def describe_error(error):
    """Short message (tensors in it can be huge) and the frames, Keras' internal ones included."""
    message = str(error)
    if len(message) > 600:
        message = message[:300] + " [...] " + message[-300:]
    frames = [
        f"{os.path.basename(f.filename)}:{f.lineno}:{f.name}"
        for f in traceback.extract_tb(error.__traceback__)
    ]
    return {"error_type": type(error).__name__, "error": message, "frames": frames}


def max_abs_diff(weights, others):
    return float(max(abs(a - b).max() for a, b in zip(weights, others, strict=True)))


def checksum(weights):
    return float(sum(abs(w).sum() for w in weights))


def main():
    args = parse_args()
    if args.logical_cpus:
        distribute.configure_logical_cpus(args.logical_cpus)
    strategy = distribute.create_strategy(args.strategy)
    result = {
        "describe": distribute.describe(strategy),
        "replicas": strategy.num_replicas_in_sync,
        "chief": distribute.is_chief(strategy),
        "fix_disabled": os.environ.get(distribute.DISABLE_FIX_ENV, ""),
    }
    stage = "setup"
    fit_fix = nest_only_fix if args.nest_only_fix else distribute.multi_worker_fit_fix
    try:
        import keras
        import numpy as np

        keras.config.disable_traceback_filtering()  # keep Keras' frames in tracebacks

        if result["chief"]:
            os.makedirs(args.out, exist_ok=True)

        batch = distribute.global_batch_size(args.batch, strategy)
        train, val, val_x = datasets(batch)
        with strategy.scope():
            model = build_and_compile()
        initial = model.get_weights()

        stage = "fit"
        with fit_fix(strategy):
            result["patched_in_block"] = "reduce" in vars(strategy)
            history = model.fit(
                train,
                validation_data=val,
                epochs=args.epochs,
                callbacks=callbacks(args.out, result["chief"]),
                verbose=0,
            )
        result["restored_after_block"] = "reduce" not in vars(strategy)
        result["history"] = history.history
        trained = model.get_weights()
        result["checksum"] = checksum(trained)
        result["moved_max_abs"] = max_abs_diff(trained, initial)

        stage = "evaluate"  # also a barrier: the chief's epoch-end files exist after it
        with fit_fix(strategy):
            result["evaluate"] = model.evaluate(val, verbose=0, return_dict=True)
        stage = "predict"
        with fit_fix(strategy):
            predictions = model.predict(val, verbose=0)
        local = model(val_x[: len(predictions)], training=False)
        result["predict_shape"] = list(predictions.shape)
        result["predict_max_abs_diff"] = float(np.max(np.abs(predictions - np.asarray(local))))

        stage = "resume"  # a new fit() restores epoch and weights from the chief's backup
        with fit_fix(strategy):
            resumed = model.fit(
                train,
                validation_data=val,
                epochs=args.epochs + 1,
                callbacks=callbacks(args.out, result["chief"]),
                verbose=0,
            )
        result["resumed_epochs"] = len(resumed.history["loss"])
        result["resumed_history"] = resumed.history
        result["final_checksum"] = checksum(model.get_weights())

        stage = "reference"  # the same training without a strategy, on the whole global batches
        reference = build_and_compile()  # outside strategy.scope(): no distribution
        reference.set_weights(initial)
        reference.fit(train, epochs=args.epochs, verbose=0)
        result["ref_max_abs_diff"] = max_abs_diff(trained, reference.get_weights())
        result["ok"] = True
    except Exception as error:
        result.update(ok=False, stage=stage, **describe_error(error))
    result["seconds"] = round(time.time() - START, 1)
    print("RESULT " + json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
