"""Training and fine-tuning with ``model.fit``: data, recipes, tf.distribute, the driver."""
