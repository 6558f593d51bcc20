"""Detection and segmentation with ECA backbones: keras-hub's RetinaNet and DeepLabV3 heads,
COCO data, COCOeval mAP and mean IoU (``eca-keras train|evaluate|predict --task ...``).

Needs ``keras-hub`` and ``pycocotools`` (``pip install 'eca-keras[detection]'``). Importing this
package imports neither.
"""
