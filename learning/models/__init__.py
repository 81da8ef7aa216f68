"""Models with an ordered list of split points. `build_model(name, ...)` is the registry."""
from __future__ import annotations

from .base import SplitModel
from .cnn import SmallCNN

MODELS = {"cnn": SmallCNN}


def build_model(name: str, in_channels: int, image_size: int, num_classes: int, **kwargs) -> SplitModel:
    """Instantiate a registered model; raises KeyError naming the known models."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    return MODELS[name](in_channels=in_channels, image_size=image_size, num_classes=num_classes, **kwargs)


__all__ = ["SplitModel", "SmallCNN", "MODELS", "build_model"]
