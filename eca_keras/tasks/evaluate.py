"""``eca-keras evaluate --task detection|segmentation``: a trained model on a dataset's
validation images (a COCO file given alone: all its images)."""

from eca_keras.data import detection as detection_data
from eca_keras.tasks import detection, models, segmentation


def evaluate_task(task, model, dataset="digits", images=None, batch_size=16, seed=0):
    """``{"map", "map50", "map75", "n", "detections"}`` (detection, COCOeval) or
    ``{"mean_iou", "pixel_accuracy", "n"}`` (segmentation) of ``model`` (a run directory,
    ``.keras`` file or keras-hub preset of that task) on ``dataset``."""
    network, config = models.open_task_model(model, task)
    _, data = detection_data.load_splits(
        dataset, images, seed=config.get("seed", seed), evaluation=True
    )
    trained_on = config.get("class_names")
    if trained_on and list(trained_on) != list(data.class_names):
        raise ValueError(
            f"The model was trained on the classes {trained_on[:5]}... but the dataset has "
            f"{data.class_names[:5]}...: evaluate on data of the same categories"
        )
    if task == "detection":
        return detection.evaluate_detector(network, data, batch_size)
    return segmentation.evaluate_segmenter(network, data, batch_size)
