"""The README's picture of predictions: a trained detector's boxes and a trained segmenter's masks
on held-out embedded scenes (handwriting the runs never saw).

    python benchmarks/prediction_picture.py --detector runs/eca_resnet18-digits-detection \\
        --segmenter runs/eca_resnet18-digits-segmentation [--count 4]

Writes ``benchmarks/results/predictions.png``: one row of detections (score >= 0.3), one row of
masks, the same scenes.
"""

import argparse
import os

import numpy as np
from PIL import Image
from results_io import RESULTS

from eca_keras.data.detection import load_splits
from eca_keras.tasks import detection, drawing, models, segmentation
from eca_keras.tasks.predict import class_names


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detector", required=True, help="a detection run directory")
    parser.add_argument("--segmenter", required=True, help="a segmentation run directory")
    parser.add_argument("--count", type=int, default=4, help="how many scenes")
    parser.add_argument("--threshold", type=float, default=0.3)
    args = parser.parse_args()

    _, data = load_splits("digits", evaluation=True)
    images = [data.image(image_id) for image_id in data.image_ids[: args.count]]
    detector, config = models.open_task_model(args.detector, "detection")
    names = class_names(detector, config)
    rows = [[]]
    for image, found in zip(images, detection.detect(detector, images), strict=True):
        keep = found["scores"] >= args.threshold
        rows[0].append(
            drawing.draw_detections(
                image, found["boxes"][keep], found["labels"][keep], found["scores"][keep], names
            )
        )
    segmenter, config = models.open_task_model(args.segmenter, "segmentation")
    names = class_names(segmenter, config)
    rows.append(
        [
            drawing.draw_mask(image, mask, names)
            for image, mask in zip(images, segmentation.segment(segmenter, images), strict=True)
        ]
    )
    gap = 6
    width, height = rows[0][0].size
    canvas = Image.new(
        "RGB",
        (len(images) * (width + gap) - gap, len(rows) * (height + gap) - gap),
        (255, 255, 255),
    )
    for row_index, row in enumerate(rows):
        for column, picture in enumerate(row):
            canvas.paste(picture, (column * (width + gap), row_index * (height + gap)))
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, "predictions.png")
    canvas.save(path, optimize=True)
    print(f"wrote {path} ({np.prod(canvas.size)} pixels)")


if __name__ == "__main__":
    main()
