"""How close inference gets to the machine: the measured float32 matmul peak, and the
arithmetic rate a model achieves (two FLOPs per multiply-accumulate of
:func:`eca_keras.complexity.count_macs`) as a fraction of it."""

import time


def matmul_peak(size=2048, rounds=5):
    """Best float32 GFLOP/s of a ``size x size`` matmul in TensorFlow over ``rounds`` calls."""
    import tensorflow as tf

    a = tf.random.normal((size, size), seed=1)
    b = tf.random.normal((size, size), seed=2)
    matmul = tf.function(tf.linalg.matmul)
    matmul(a, b).numpy()  # trace and warm up
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def achieved_gflops(macs_per_image, images_per_second):
    """Arithmetic rate of a model running at ``images_per_second``, in GFLOP/s."""
    return 2 * macs_per_image * images_per_second / 1e9
