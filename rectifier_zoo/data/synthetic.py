"""The built-in synthetic data set: real JPEG files in the ImageNet folder layout.

Ten classes told apart by shape or texture only (disc, ring, triangle, plus, X, square frame,
stripes, checkerboard, dots, mesh). Colours, positions, sizes, rotations, background gradients
and noise are random and shared by all classes, so colour alone does not tell the class. Image
sides vary from `min_side` to `max_side` with varied aspect ratios, so the scale-jitter crop path
is exercised as on ImageNet. Every class is invariant to a horizontal flip.

The generator is deterministic (one NumPy generator per image, seeded by (seed, split, index)), so
the same parameters give byte-identical files. A `COMPLETE.json` marker holding the generator
version and a hash of the parameters is written last; a folder without it, or with another hash,
is rebuilt. This makes an interrupted generation harmless.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import uuid

import numpy as np
import tensorflow as tf

# Bump when the rendering changes, so stale caches are rebuilt.
GENERATOR_VERSION = 1
MARKER_FILE = "COMPLETE.json"
CLASS_NAMES = (
    "00_disc",
    "01_ring",
    "02_triangle",
    "03_plus",
    "04_x_cross",
    "05_square_frame",
    "06_stripes",
    "07_checkerboard",
    "08_dots",
    "09_mesh",
)
_SPLITS = {"train": 0, "val": 1}
_MAX_ASPECT = 1.75


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the synthetic data set (all of them enter the cache hash).

    Args:
        num_classes: number of classes, 2 to 10.
        train_images: number of training images (classes balanced).
        val_images: number of validation images.
        min_side: smallest image side in pixels.
        max_side: largest image side in pixels.
        difficulty: 0 (default, learnable to > 90% by a small convnet in minutes) to 1 (more
            noise, lower contrast, smaller shapes, distractor blobs).
        seed: generator seed.
        jpeg_quality: JPEG quality of the written files.
    """

    num_classes: int = 10
    train_images: int = 2000
    val_images: int = 500
    min_side: int = 64
    max_side: int = 160
    difficulty: float = 0.0
    seed: int = 0
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        if not 2 <= self.num_classes <= len(CLASS_NAMES):
            raise ValueError(
                f"num_classes must be in [2, {len(CLASS_NAMES)}]. "
                f"Received: num_classes={self.num_classes}"
            )
        if self.train_images < self.num_classes or self.val_images < 1:
            raise ValueError(
                "train_images must be >= num_classes and val_images >= 1. Received: "
                f"train_images={self.train_images}, val_images={self.val_images}"
            )
        if not 8 <= self.min_side <= self.max_side:
            raise ValueError(
                "Expected 8 <= min_side <= max_side. "
                f"Received: min_side={self.min_side}, max_side={self.max_side}"
            )
        if not 0.0 <= self.difficulty <= 1.0:
            raise ValueError(
                f"difficulty must be in [0, 1]. Received: difficulty={self.difficulty}"
            )

    def fingerprint(self) -> str:
        payload = json.dumps(
            {"generator_version": GENERATOR_VERSION, **dataclasses.asdict(self)}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()


# Small enough for unit tests: a couple of seconds to generate, tiny images.
TINY_CONFIG = SyntheticConfig(
    num_classes=4, train_images=16, val_images=8, min_side=24, max_side=48, seed=1
)


def default_cache_dir() -> str:
    """`$XDG_CACHE_HOME/rectifier_zoo/synthetic`, or `~/.cache/rectifier_zoo/synthetic`."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache_home, "rectifier_zoo", "synthetic")


def _read_marker(root: str) -> dict | None:
    try:
        with open(os.path.join(root, MARKER_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def is_complete(root: str, config: SyntheticConfig) -> bool:
    """Whether `root` holds a completely written data set made with `config`.

    Args:
        root: data set folder.
        config: the expected parameters.
    """
    marker = _read_marker(root)
    return marker is not None and marker.get("fingerprint") == config.fingerprint()


def ensure_synthetic_dataset(
    root: str | os.PathLike | None = None, config: SyntheticConfig | None = None, **kwargs
) -> str:
    """Returns a folder with the synthetic data set, generating it first if needed.

    The layout is `<root>/train/<class>/*.JPEG` and `<root>/val/<class>/*.JPEG`, read by the
    "folder" source. Generation of the default set takes a few seconds.

    Args:
        root: target folder. Default: `default_cache_dir()` for the default parameters, and a
            sibling `synthetic-<hash>` folder for other parameters so variants do not overwrite
            each other.
        config: the parameters; default `SyntheticConfig()`.
        **kwargs: overrides of `SyntheticConfig` fields, e.g. `difficulty=0.5`.

    Returns:
        The data set folder.
    """
    config = dataclasses.replace(config or SyntheticConfig(), **kwargs)
    if root is None:
        root = default_cache_dir()
        if config != SyntheticConfig():
            root = f"{root}-{config.fingerprint()[:12]}"
    root = os.fspath(root)
    if is_complete(root, config):
        return root
    os.makedirs(root, exist_ok=True)
    # Write into a private folder and move it in, so a concurrent reader or a crash never sees
    # a half-written split; the marker is written last.
    staging = os.path.join(root, f".partial-{uuid.uuid4().hex}")
    try:
        for split in _SPLITS:
            _write_split(os.path.join(staging, split), split, config)
        marker_path = os.path.join(root, MARKER_FILE)
        if os.path.exists(marker_path):
            os.remove(marker_path)
        for split in _SPLITS:
            target = os.path.join(root, split)
            if os.path.exists(target):
                shutil.rmtree(target)
            os.replace(os.path.join(staging, split), target)
        with open(marker_path + ".tmp", "w") as f:
            json.dump(
                {
                    "fingerprint": config.fingerprint(),
                    "generator_version": GENERATOR_VERSION,
                    "config": dataclasses.asdict(config),
                },
                f,
                indent=2,
                sort_keys=True,
            )
        os.replace(marker_path + ".tmp", marker_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _write_split(folder: str, split: str, config: SyntheticConfig) -> None:
    count = config.train_images if split == "train" else config.val_images
    for name in CLASS_NAMES[: config.num_classes]:
        os.makedirs(os.path.join(folder, name), exist_ok=True)
    for index in range(count):
        label = index % config.num_classes
        rng = np.random.default_rng([config.seed, _SPLITS[split], index])
        image = render_image(rng, label, config)
        encoded = tf.io.encode_jpeg(image, quality=config.jpeg_quality).numpy()
        path = os.path.join(folder, CLASS_NAMES[label], f"{split}_{index:06d}.JPEG")
        with open(path, "wb") as f:
            f.write(encoded)


def _random_colours(rng: np.random.Generator, min_distance: float) -> tuple[np.ndarray, ...]:
    # Foreground and background differ enough to see the shape, in any hue.
    while True:
        background, foreground = rng.uniform(0, 255, size=(2, 3))
        if np.linalg.norm(background - foreground) >= min_distance:
            return background, foreground


def _shape_mask(rng: np.random.Generator, label: int, height: int, width: int, d: float):
    """Float mask in [0, 1] of the class's shape or texture at a random place, size and angle."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    shorter = min(height, width)
    radius = shorter * rng.uniform(0.28, 0.45) * (1.0 - 0.3 * d)
    # Keep the centre near the middle, measured in shorter sides, so random training crops (a
    # square of most of the shorter side) still see the shape along the longer side too.
    cy = height / 2 + rng.uniform(-0.15, 0.15) * shorter
    cx = width / 2 + rng.uniform(-0.15, 0.15) * shorter
    dy, dx = y - cy, x - cx
    # Classes are rotation-jittered only a little: a plus rotated 45 degrees is an X.
    if label in (3, 4, 5):
        angle = np.deg2rad(rng.uniform(-12, 12) + (45.0 if label == 4 else 0.0))
    else:
        angle = rng.uniform(0, np.pi)
    u = np.cos(angle) * dx + np.sin(angle) * dy
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    dist = np.hypot(dx, dy)
    thickness = max(2.0, radius * rng.uniform(0.2, 0.32))
    if label == 0:  # disc
        return dist <= radius
    if label == 1:  # ring
        return np.abs(dist - radius) <= thickness / 2
    if label == 2:  # triangle: inside three half-planes at 120 degrees
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):
            a = angle + k * 2 * np.pi / 3
            inside &= (np.cos(a) * dx + np.sin(a) * dy) <= radius * 0.5
        return inside
    if label in (3, 4):  # plus / X
        return ((np.abs(u) <= thickness / 2) & (np.abs(v) <= radius)) | (
            (np.abs(v) <= thickness / 2) & (np.abs(u) <= radius)
        )
    if label == 5:  # square frame
        box = np.maximum(np.abs(u), np.abs(v))
        return (box <= radius) & (box >= radius - thickness)
    # Textures fill a large random rectangle around the centre.
    half_h = shorter * rng.uniform(0.3, 0.6)
    half_w = shorter * rng.uniform(0.3, 0.6)
    region = (np.abs(dy) <= half_h) & (np.abs(dx) <= half_w)
    # Relative to the image, so the texture survives the rescale to the training scale.
    period = shorter * rng.uniform(0.08, 0.14)
    if label == 6:  # stripes
        pattern = np.sin(2 * np.pi * u / period) > 0
    elif label == 7:  # checkerboard
        pattern = (np.floor(u / period) + np.floor(v / period)) % 2 == 0
    elif label == 8:  # dots on a grid
        pu = (u / period) % 1.0 - 0.5
        pv = (v / period) % 1.0 - 0.5
        pattern = np.hypot(pu, pv) <= 0.25
    else:  # mesh of thin lines
        pu = np.abs((u / period) % 1.0 - 0.5)
        pv = np.abs((v / period) % 1.0 - 0.5)
        pattern = (pu >= 0.36) | (pv >= 0.36)
    return region & pattern


def render_image(rng: np.random.Generator, label: int, config: SyntheticConfig) -> np.ndarray:
    """Draws one uint8 RGB image of class `label`.

    Args:
        rng: the image's own generator (determinism).
        label: class index.
        config: sizes and difficulty.

    Returns:
        uint8 array [height, width, 3].
    """
    d = config.difficulty
    # Sides uniform in [min_side, max_side], aspect ratio at most 1.75 (ImageNet's common range).
    while True:
        height, width = (int(v) for v in rng.integers(config.min_side, config.max_side + 1, size=2))
        if max(height, width) <= _MAX_ASPECT * min(height, width):
            break
    background, foreground = _random_colours(rng, min_distance=90.0 - 50.0 * d)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    # A smooth lighting gradient so flat background colour is not a shortcut either.
    gradient_angle = rng.uniform(0, 2 * np.pi)
    gradient = (np.cos(gradient_angle) * x / width + np.sin(gradient_angle) * y / height) * (
        rng.uniform(-30, 30)
    )
    image = background[None, None, :] + gradient[..., None]
    mask = _shape_mask(rng, label, height, width, d).astype(np.float32)
    image = image * (1.0 - mask[..., None]) + foreground[None, None, :] * mask[..., None]
    if d > 0:
        # Distractor blobs of random colour, not shaped like any class.
        for _ in range(rng.integers(0, 1 + int(4 * d))):
            by, bx = rng.uniform(0, height), rng.uniform(0, width)
            sy, sx = rng.uniform(2, 0.15 * height), rng.uniform(2, 0.15 * width)
            blob = np.exp(-(((y - by) / sy) ** 2 + ((x - bx) / sx) ** 2))
            image = image * (1 - blob[..., None]) + rng.uniform(0, 255, 3) * blob[..., None]
    image += rng.normal(0.0, 6.0 + 30.0 * d, size=image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def ensure_tiny_synthetic_dataset(root: str) -> str:
    """A few tiny synthetic images (4 classes, 24-48 px) at `root`, for tests.

    Args:
        root: target folder.
    """
    return ensure_synthetic_dataset(root, TINY_CONFIG)
