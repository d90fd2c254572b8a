"""TensorFlow input pipeline: data sources, the paper's augmentation, the synthetic data set.

    from rectifier_zoo import data
    source = data.get_source("synthetic")            # or "folder", "tfrecord", "imagenet2012"
    ds = data.make_dataset(source, "train", is_training=True, global_batch_size=128,
                           config=data.TransformConfig(crop_size=64, min_scale=72, max_scale=96))

Images come out as float32 RGB in [0, 255] (the model subtracts the ImageNet mean itself).
"""

from rectifier_zoo.data.pipeline import (
    DEFAULT_SHUFFLE_BUFFER_SIZE,
    make_dataset,
    num_skipped_images,
    reset_skipped_images,
    skipped_image_names,
)
from rectifier_zoo.data.sources import (
    SOURCES,
    SPLITS,
    FolderSource,
    Source,
    TFDSImageNetSource,
    TFRecordSource,
    check_splits,
    get_source,
    imagenet_wnids,
    prepare_imagenet2012,
)
from rectifier_zoo.data.synthetic import (
    TINY_CONFIG,
    SyntheticConfig,
    default_cache_dir,
    ensure_synthetic_dataset,
)
from rectifier_zoo.data.transforms import (
    IMAGENET_PCA_EIGENVALUES,
    IMAGENET_PCA_EIGENVECTORS,
    TransformConfig,
    center_crop_window,
    color_jitter,
    decode_and_crop,
    decode_then_crop,
    eval_transform,
    looks_decodable,
    pca_lighting,
    random_crop_window,
    random_flip,
    train_transform,
)


def ensure_tiny_synthetic_dataset(root: str) -> str:
    """A few tiny synthetic images (4 classes, 24-48 px) at `root`, for tests.

    Args:
        root: target folder.
    """
    return ensure_synthetic_dataset(root, TINY_CONFIG)


__all__ = [
    "DEFAULT_SHUFFLE_BUFFER_SIZE",
    "IMAGENET_PCA_EIGENVALUES",
    "IMAGENET_PCA_EIGENVECTORS",
    "SOURCES",
    "SPLITS",
    "TINY_CONFIG",
    "FolderSource",
    "Source",
    "SyntheticConfig",
    "TFDSImageNetSource",
    "TFRecordSource",
    "TransformConfig",
    "center_crop_window",
    "check_splits",
    "color_jitter",
    "decode_and_crop",
    "decode_then_crop",
    "default_cache_dir",
    "ensure_synthetic_dataset",
    "ensure_tiny_synthetic_dataset",
    "eval_transform",
    "get_source",
    "imagenet_wnids",
    "looks_decodable",
    "make_dataset",
    "num_skipped_images",
    "pca_lighting",
    "prepare_imagenet2012",
    "random_crop_window",
    "random_flip",
    "reset_skipped_images",
    "skipped_image_names",
    "train_transform",
]
