"""The evaluation transform written independently of the package, with PIL as torchvision and
timm apply it: ``Resize(int(size / crop_pct))`` (short side, aspect kept), ``CenterCrop(size)``,
then ``(x / 255 - mean) / std``."""

import math

import numpy as np
from PIL import Image

RESAMPLE = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def pil_pixels(image, size, crop_pct=0.875, interpolation="bilinear"):
    """uint8 ``(H, W, 3)`` -> uint8 ``(size, size, 3)``: resized and center-cropped by PIL."""
    picture = Image.fromarray(np.asarray(image, np.uint8))
    width, height = picture.size
    short_side = math.floor(size / crop_pct)
    if width <= height:  # torchvision: the long side is int(short_side * long / short)
        new_size = (short_side, int(short_side * height / width))
    else:
        new_size = (int(short_side * width / height), short_side)
    if new_size != picture.size:
        picture = picture.resize(new_size, RESAMPLE[interpolation])
    left = int(round((new_size[0] - size) / 2.0))  # torchvision's CenterCrop: round half even
    top = int(round((new_size[1] - size) / 2.0))
    return np.asarray(picture.crop((left, top, left + size, top + size)), np.uint8)


def normalized(pixels, mean=MEAN, std=STD):
    return (np.asarray(pixels, np.float32) / 255.0 - np.float32(mean)) / np.float32(std)
