"""The input transforms' settings (pure Python: the training flags are built from it without
importing TensorFlow)."""

from __future__ import annotations

import dataclasses

from rectifier_zoo import paper


@dataclasses.dataclass(frozen=True)
class TransformConfig:
    """Sizes and augmentation strengths of the input transforms.

    Args:
        crop_size: side of the square output crop (paper: 224).
        min_scale: smallest shorter side s of the training scale jitter (paper: 256).
        max_scale: largest shorter side s of the training scale jitter (paper: 512).
        eval_resize: shorter side before the evaluation centre crop (paper: 256).
        flip: random horizontal flip with p = 0.5 in training.
        pca_lighting: standard deviation of AlexNet's PCA lighting coefficients (AlexNet: 0.1);
            0 turns it off.
        color_jitter: strength j of a random brightness / contrast / saturation change, each a
            factor drawn uniformly in [1 - j, 1 + j]; 0 (default, as in the paper) turns it off.
        jpeg_downscale: in the evaluation view, decode a JPEG whose shorter side is at least
            twice `eval_resize` at 1/2, 1/4 or 1/8 scale in the DCT domain (the smallest scale
            that keeps the shorter side >= `eval_resize`), so a 12 MP photo never exists at
            full size in memory. The view is then resized from fewer pixels.
    """

    crop_size: int = paper.CROP_SIZE
    min_scale: int = paper.SCALE_JITTER[0]
    max_scale: int = paper.SCALE_JITTER[1]
    eval_resize: int = paper.TEST_RESIZE
    flip: bool = True
    pca_lighting: float = paper.PCA_LIGHTING_STD
    color_jitter: float = 0.0
    jpeg_downscale: bool = True

    def __post_init__(self) -> None:
        # Fail at construction, before any graph is traced, with the fix in the message.
        if self.crop_size < 1:
            raise ValueError(f"crop_size must be >= 1. Received: crop_size={self.crop_size}")
        if self.min_scale < self.crop_size:
            raise ValueError(
                "min_scale must be >= crop_size (the crop must fit inside the rescaled image). "
                f"Received: min_scale={self.min_scale}, crop_size={self.crop_size}"
            )
        if self.max_scale < self.min_scale:
            raise ValueError(
                "max_scale must be >= min_scale. "
                f"Received: min_scale={self.min_scale}, max_scale={self.max_scale}"
            )
        if self.eval_resize < self.crop_size:
            raise ValueError(
                "eval_resize must be >= crop_size. "
                f"Received: eval_resize={self.eval_resize}, crop_size={self.crop_size}"
            )
        if self.pca_lighting < 0:
            raise ValueError(
                f"pca_lighting must be >= 0. Received: pca_lighting={self.pca_lighting}"
            )
        if not 0 <= self.color_jitter < 1:
            raise ValueError(
                f"color_jitter must be in [0, 1). Received: color_jitter={self.color_jitter}"
            )
