"""TensorFlow input pipeline: data sources, the paper's augmentation, the synthetic data set.

    from rectifier_zoo import data
    source = data.get_source("synthetic")            # or "folder", "tfrecord", "imagenet2012"
    ds = data.make_dataset(source, "train", is_training=True, global_batch_size=128,
                           config=data.TransformConfig(crop_size=64, min_scale=72, max_scale=96))

Images come out as float32 RGB in [0, 255] (the model subtracts the ImageNet mean itself). The
single transforms (crop windows, PCA lighting, the fused JPEG decode) are in
`rectifier_zoo.data.transforms`. Names load on first use: `rectifier_zoo.data.config` (the
transform settings) imports no TensorFlow.
"""

from rectifier_zoo._lazy import lazy_namespace

# name -> module of rectifier_zoo.data that defines it
_EXPORTS = {
    "TransformConfig": "config",
    "make_dataset": "pipeline",
    "num_skipped_images": "pipeline",
    "reset_skipped_images": "pipeline",
    "skipped_image_names": "pipeline",
    "SOURCES": "sources",
    "SPLITS": "sources",
    "Source": "sources",
    "FolderSource": "sources",
    "TFRecordSource": "sources",
    "TFDSImageNetSource": "sources",
    "check_splits": "sources",
    "get_source": "sources",
    "prepare_imagenet2012": "sources",
    "SyntheticConfig": "synthetic",
    "TINY_CONFIG": "synthetic",
    "default_cache_dir": "synthetic",
    "ensure_synthetic_dataset": "synthetic",
    "ensure_tiny_synthetic_dataset": "synthetic",
    "eval_transform": "transforms",
    "looks_decodable": "transforms",
    "train_transform": "transforms",
}
_SUBMODULES = ("config", "pipeline", "sources", "synthetic", "testing", "transforms")

__getattr__, __dir__, __all__ = lazy_namespace(__name__, _EXPORTS, _SUBMODULES)
