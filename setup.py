"""eca_keras: ECA-Net (Efficient Channel Attention) for Keras 3 and TensorFlow."""

import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
HUB = ["keras-hub>=0.21", "kagglehub>=0.3"]  # keras-hub presets, Kaggle handles
DETECTION = ["keras-hub>=0.32", "pycocotools>=2.0.7", "pillow>=9"]
# TFLite metadata and the MediaPipe client check; ONNX export and runtime (eca_keras.extras).
DEPLOY = ["mediapipe>=0.10.14", "tf2onnx>=1.16", "onnx>=1.16", "onnxruntime>=1.18"]
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "eca_keras/__init__.py").read_text())[1]

setup(
    name="eca-keras",
    version=VERSION,
    description="ECA-Net (Efficient Channel Attention) layers, models and weights for Keras 3",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["eca_keras", "eca_keras.*"]),
    package_data={"eca_keras": ["applications/data/*", "data/*", "training/recipes/*.yaml"]},
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.3",
        "tensorflow-datasets>=4.9",
        "numpy>=1.23",
        "safetensors>=0.4",
        "pyyaml>=5.4",
        "tensorboard>=2.16",  # TensorFlow 2.21 no longer installs it; runs write TensorBoard logs
        "ai-edge-litert>=2.3",  # the LiteRT interpreter: every TFLite export verifies itself
        "huggingface_hub>=0.24",  # timm's weights and hf:// presets, through the hub's own cache
    ],
    extras_require={
        "hub": HUB,
        "benchmark": ["torch>=2.1", "matplotlib>=3.5", *DEPLOY],
        "deploy": DEPLOY,
        # eca-keras train/evaluate/predict --task detection|segmentation (eca_keras.tasks)
        "detection": DETECTION,
        "test": [
            "pytest>=7",
            "pytest-xdist>=3",
            "ruff>=0.5",
            "jax[cpu]>=0.4.30",
            "torch>=2.1",
            "timm>=1.0.15",  # the reference of timm's models
            *HUB,
            "pycocotools>=2.0.7",
            *DEPLOY,
        ],
    },
    entry_points={"console_scripts": ["eca-keras=eca_keras.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: Keras",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
