"""Models with an ordered list of split points. `build_model(name, ...)` is the registry."""
from __future__ import annotations

from .base import SplitModel
from .cnn import SmallCNN
from .resnet import ResNet18
from .vit import VisionTransformer, vit_base, vit_micro, vit_small, vit_tiny

MODELS = {
    "cnn": SmallCNN,
    "resnet18": ResNet18,
    "vit_tiny": vit_tiny,
    "vit_small": vit_small,
    "vit_base": vit_base,
    "vit_micro": vit_micro,
}


def build_model(name: str, in_channels: int, image_size: int, num_classes: int, **kwargs) -> SplitModel:
    """Instantiate a registered model; raises KeyError naming the known models."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    return MODELS[name](in_channels=in_channels, image_size=image_size, num_classes=num_classes, **kwargs)


__all__ = ["SplitModel", "SmallCNN", "ResNet18", "VisionTransformer", "MODELS", "build_model"]
