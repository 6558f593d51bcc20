"""Pictures of predictions (PIL): boxes with their class and score, masks as a colour overlay."""

import numpy as np

# Distinct colours (Okabe-Ito, then Tableau), cycled over the classes.
PALETTE = (
    (230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178),
    (213, 94, 0), (204, 121, 167), (255, 255, 255), (31, 119, 180), (255, 127, 14),
    (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75), (227, 119, 194),
)  # fmt: skip
OVERLAY_OPACITY = 0.55


def colour(index):
    return PALETTE[int(index) % len(PALETTE)]


def _scale_for(image, minimum=256):
    """Small images are enlarged (nearest) so that labels stay readable."""
    return max(1, int(np.ceil(minimum / max(image.shape[:2]))))


def draw_detections(image, boxes, labels, scores, class_names):
    """A PIL image: ``image`` (uint8 RGB) with each box outlined in its class's colour and
    labelled ``name score``."""
    from PIL import Image, ImageDraw

    factor = _scale_for(image)
    picture = Image.fromarray(image).resize(
        (image.shape[1] * factor, image.shape[0] * factor), Image.NEAREST
    )
    draw = ImageDraw.Draw(picture)
    for box, label, score in zip(boxes, labels, scores, strict=True):
        x1, y1, x2, y2 = (float(value) * factor for value in box)
        draw.rectangle((x1, y1, x2, y2), outline=colour(label), width=2)
        text = f"{class_names[int(label)]} {float(score):.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), text)
        top_edge = max(0.0, y1 - (bottom - top) - 2)
        label_box = (x1, top_edge, x1 + right - left + 2, top_edge + bottom - top + 2)
        draw.rectangle(label_box, fill=colour(label))
        draw.text((x1 + 1, top_edge), text, fill=(0, 0, 0))
    return picture


def draw_mask(image, mask, class_names):
    """A PIL image: ``image`` with the class mask (0 background, ``1 + class``) blended over it
    in the classes' colours, and a legend of the classes present."""
    from PIL import Image, ImageDraw

    overlay = image.astype("float32").copy()
    present = [int(value) for value in np.unique(mask) if value != 0]
    for value in present:
        where = mask == value
        overlay[where] = (1 - OVERLAY_OPACITY) * overlay[where] + OVERLAY_OPACITY * np.asarray(
            colour(value - 1), "float32"
        )
    factor = _scale_for(image)
    picture = Image.fromarray(np.round(overlay).astype("uint8")).resize(
        (image.shape[1] * factor, image.shape[0] * factor), Image.NEAREST
    )
    draw = ImageDraw.Draw(picture)
    y = 2
    for value in present:
        name = class_names[value - 1] if value - 1 < len(class_names) else str(value)
        left, top, right, bottom = draw.textbbox((4, y), name)
        draw.rectangle((2, y, right + 2, bottom + 1), fill=colour(value - 1))
        draw.text((4, y), name, fill=(0, 0, 0))
        y = bottom + 3
    return picture
