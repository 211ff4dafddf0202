"""scikit-learn's handwritten digits (UCI optdigits test set: 1,797 images, 8x8, 10 classes).

The data ships inside scikit-learn, so nothing is downloaded. Images are upsampled with bicubic
interpolation to the configured power-of-two size and stored as uint8 ``[N, 1, H, W]``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def load_digit_images(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images [N, 1, S, S] uint8, labels [N] int64)``."""
    from sklearn.datasets import load_digits  # here: scikit-learn is slow to import (only `prepare` needs it)

    bunch = load_digits()
    raw = (bunch.images / 16.0 * 255.0).round().astype(np.uint8)  # [N, 8, 8], 0..16 -> 0..255
    resized = np.stack([
        np.asarray(Image.fromarray(img).resize((image_size, image_size), Image.BICUBIC))
        for img in raw
    ])
    return resized[:, None, :, :], bunch.target.astype(np.int64)
