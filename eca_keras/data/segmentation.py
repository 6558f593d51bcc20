"""Segmentation batches: letterboxed images and class masks for keras-hub's DeepLabV3."""

from eca_keras.data.annotated import letterbox
from eca_keras.data.detection import ordered_ids, with_length


def segmentation_batches(data, image_size, batch_size, shuffle=False, seed=0, repeat=False):
    """``tf.data`` batches ``(uint8 images, int32 masks (B, S, S, 1))``: letterboxed, the class
    mask's padding :data:`IGNORE_LABEL`."""
    import tensorflow as tf

    def examples():
        epoch = 0
        while True:
            for image_id in ordered_ids(data, shuffle, seed + epoch):
                pixels, mask, _ = letterbox(data.image(image_id), image_size, data.mask(image_id))
                yield pixels, mask[..., None].astype("int32")
            epoch += 1
            if not repeat:
                return

    signature = (
        tf.TensorSpec((image_size, image_size, 3), tf.uint8),
        tf.TensorSpec((image_size, image_size, 1), tf.int32),
    )
    batches = tf.data.Dataset.from_generator(examples, output_signature=signature)
    batches = batches.batch(batch_size, drop_remainder=repeat)
    return with_length(batches, data, batch_size, repeat).prefetch(tf.data.AUTOTUNE)
