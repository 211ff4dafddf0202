"""The evaluator: a small CNN classifier whose penultimate layer is the feature space of FID/KID.

Inception weights cannot be downloaded here and would be the wrong lens for 16x16 digits; a
classifier trained on the dataset's own train split is (DESIGN.md section 5).
"""

from __future__ import annotations

import torch
from torch import nn

MAX_FLAT_SIDE = 8  # the feature layer sees at most a 64 x 8 x 8 map (16 x 16 images give 4 x 4)


class EvaluatorCNN(nn.Module):
    """conv-conv-pool-conv-pool -> flatten -> feature layer (ReLU) -> dropout -> class logits.

    Flattening the 64 x (S/4) x (S/4) map keeps where strokes are, which a digit classifier needs
    (global average pooling instead trained to only ~93% in 30 epochs, flattening to ~98% in 15).
    Above 32 x 32 images the map is max-pooled down to ``MAX_FLAT_SIDE`` x ``MAX_FLAT_SIDE`` first, so
    the feature layer keeps at most 64 x 8 x 8 = 4,096 inputs (64 x 64 images would give 16,384). At
    16 and 32 nothing changes, and the extra pooling has no parameters: the state_dict keys are the
    same at every size, and the committed 16 x 16 evaluators load and compute as before.
    """

    def __init__(self, channels: int, num_classes: int, feature_dim: int = 64, image_size: int = 16):
        super().__init__()
        assert image_size % 4 == 0, f"image_size {image_size} must be a multiple of 4 (two 2x poolings)"
        side = min(image_size // 4, MAX_FLAT_SIDE)  # of the map the feature layer sees
        flatten = nn.Flatten() if image_size // 4 <= MAX_FLAT_SIDE else nn.Sequential(
            nn.AdaptiveMaxPool2d(MAX_FLAT_SIDE), nn.Flatten())  # [N, 64, S/4, S/4] -> [N, 64, 8, 8] -> flat
        self.backbone = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(2),
            flatten,  # [N, 64 * side^2]
            nn.Linear(64 * side ** 2, feature_dim), nn.ReLU(True),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(feature_dim, num_classes))
        self.feature_dim = feature_dim
        # The constructor's arguments: saved beside the state_dict so the evaluator can be rebuilt.
        self.arch = {"channels": channels, "num_classes": num_classes, "feature_dim": feature_dim,
                     "image_size": image_size}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images [N, C, H, W] in [-1, 1] -> features [N, feature_dim]."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))  # [N, num_classes] logits
