"""The client check: a ``.tflite`` run as a phone app runs it, by MediaPipe Tasks' ImageClassifier.

The classifier reads the labels and the normalisation from the file's metadata, so this checks
what our own loader cannot: that the file works without glue code. It runs in a child process
(``python -m eca_keras.export.mediapipe_check``): a MediaPipe graph that fails leaves a classifier
that cannot be closed, and a later one in the same process can hang. Images go in at exactly the
model's input size (MediaPipe's resize is then the identity); every category is requested, so the
full score matrix comes back with the names MediaPipe attached.

:func:`check` compares what it returns with the LiteRT interpreter on the same file (equal up to
:data:`~eca_keras.export.verify.CLIENT_BOUNDS`), with the labels (every name), with the Keras
model (the export's own bound), and reads the metadata back (labels, normalisation); a mismatch
raises :class:`~eca_keras.export.verify.VerificationError`.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

TIMEOUT_SECONDS = 600


def classify(path, pixels, classes, timeout=TIMEOUT_SECONDS):
    """MediaPipe's ImageClassifier on uint8 ``pixels`` ``(N, S, S, 3)``: ``(scores, names)``,
    ``scores`` ``(N, classes)`` (NaN where no category came back) and ``names`` the category
    names per image and class index (``""`` where none)."""
    import eca_keras

    package_root = os.path.dirname(os.path.dirname(os.path.abspath(eca_keras.__file__)))
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [package_root, *filter(None, [environment.get("PYTHONPATH")])]
    )
    with tempfile.TemporaryDirectory(prefix="eca-keras-mediapipe-") as work:
        request, result = os.path.join(work, "pixels.npy"), os.path.join(work, "result.json")
        np.save(request, np.ascontiguousarray(pixels, "uint8"))
        command = [
            sys.executable, "-m", __name__, os.path.abspath(path), request, str(classes), result
        ]  # fmt: skip
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, env=environment
            )
        except subprocess.TimeoutExpired:
            message = f"MediaPipe's ImageClassifier gave no answer in {timeout} s"
            raise RuntimeError(message) from None
        if done.returncode or not os.path.isfile(result):
            message = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise RuntimeError(f"MediaPipe's ImageClassifier failed on {path}: {message}")
        with open(result) as handle:
            answer = json.load(handle)
    return np.asarray(answer["scores"], "float64"), answer["names"]


def compare(scores, names, litert, labels):
    """Figures of MediaPipe's ``scores`` and ``names`` against the LiteRT interpreter's
    probabilities on the same file and the model's ``labels``."""
    returned = ~np.isnan(scores)
    difference = np.abs(np.where(returned, scores, 0.0) - np.where(returned, litert, 0.0))
    wrong = [
        (image, index, name)
        for image, row in enumerate(names)
        for index, name in enumerate(row)
        if returned[image, index] and name != str(labels[index])
    ]
    return {
        "images": int(len(scores)),
        "max_abs_difference_vs_litert": float(difference.max()) if difference.size else 0.0,
        "missing_categories": int((~returned).sum()),
        "wrong_category_names": len(wrong),
        "first_wrong_name": list(wrong[0]) if wrong else None,  # image, class index, name
    }


def check(path, pixels, litert, reference, labels, kind, input_dtype):
    """Runs the client check on ``path``; returns its figures or raises ``VerificationError``.

    ``litert``: the interpreter's probabilities on ``pixels``; ``reference``: the Keras model's;
    ``kind``: the quantization (its bounds); ``input_dtype``: the file's input type."""
    from eca_keras.export import metadata, verify

    with open(path, "rb") as handle:
        read_back = metadata.read_tflite_metadata(handle.read())
    if read_back is None:
        raise verify.VerificationError(f"{path} has no metadata for MediaPipe to read")
    scores, names = classify(path, pixels, len(labels))
    figures = compare(scores, names, litert, labels)
    figures["vs_keras"] = verify.measure(reference, np.nan_to_num(scores))
    bound = verify.CLIENT_BOUNDS[kind]
    figures["bound"] = {"max_abs_difference_vs_litert": bound}
    problems = []
    if figures["wrong_category_names"]:
        image, index, name = figures["first_wrong_name"]
        problems.append(
            f"{figures['wrong_category_names']} categories carry another name than the model's "
            f"label (image {image}, class {index}: {name!r} instead of {str(labels[index])!r})"
        )
    if figures["missing_categories"]:
        problems.append(f"{figures['missing_categories']} categories did not come back")
    if not figures["max_abs_difference_vs_litert"] <= bound:
        problems.append(
            f"its scores differ from LiteRT's on the same file by "
            f"{figures['max_abs_difference_vs_litert']:.2e} (bound {bound:.1e})"
        )
    problems += metadata_problems(read_back, labels, input_dtype)
    if problems:
        raise verify.VerificationError(
            f"MediaPipe's ImageClassifier does not see the model as exported: {'; '.join(problems)}"
        )
    try:
        verify.check(figures["vs_keras"], kind)
    except verify.VerificationError as error:
        raise verify.VerificationError(f"MediaPipe's ImageClassifier: {error}") from None
    return figures


def metadata_problems(read_back, labels, input_dtype):
    """What in the read-back metadata contradicts the model: the labels, and the normalisation
    (which MediaPipe ignores for uint8 inputs, so only this reading catches it)."""
    from eca_keras.export.metadata import NORMALIZATION

    problems = []
    if read_back["labels"] != [str(label) for label in labels]:
        problems.append("the labels in its metadata are not the model's classes in output order")
    mean, std = NORMALIZATION[input_dtype]
    found = read_back["normalization"] or {}
    if found.get("mean") != mean or found.get("std") != std:
        problems.append(
            f"its metadata says the input is normalised with mean {found.get('mean')} and std "
            f"{found.get('std')}; the model takes raw {input_dtype} pixels (mean {mean}, "
            f"std {std})"
        )
    return problems


def _classify_here(path, pixels_file, classes, result_file):
    """The child's side: MediaPipe in this process, every category of every image."""
    # MediaPipe's metadata module imports TensorFlow when it can, only to open files; the
    # classifier does not need it (and loading it takes seconds).
    sys.modules.setdefault("tensorflow", None)
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    pixels = np.load(pixels_file)
    scores = np.full((len(pixels), int(classes)), np.nan)
    names = [[""] * int(classes) for _ in pixels]
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=path))
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for image, (row, row_names) in enumerate(zip(scores, names, strict=True)):
            frame = mp.Image(
                image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(pixels[image])
            )
            for category in classifier.classify(frame).classifications[0].categories:
                row[category.index] = category.score
                row_names[category.index] = category.category_name or ""
    with open(result_file, "w") as handle:
        json.dump({"scores": scores.tolist(), "names": names}, handle)


if __name__ == "__main__":
    _classify_here(*sys.argv[1:5])
