"""Readers of encoded images: tfds `imagenet2012`, ImageNet-style folders, TFRecords, synthetic.

Every source yields, for one input pipeline, a `tf.data.Dataset` of `(image_bytes, label, key)`:
the still-encoded file, an int32 label in [0, num_classes) and a string naming the example (path
or file name) for error messages. Decoding and augmentation happen in `pipeline.make_dataset`, so
the JPEG can be decoded only inside its crop window.

Sharding across input pipelines is by file (folders: image files; TFRecords and tfds: shards),
so pipelines read disjoint data, as `strategy.distribute_datasets_from_function` expects.
"""

from __future__ import annotations

import glob
import os

import tensorflow as tf

from rectifier_zoo import imagenet
from rectifier_zoo.checks import check_choice
from rectifier_zoo.data import synthetic

SOURCES = ("synthetic", "folder", "tfrecord", "imagenet2012")
SPLITS = ("train", "validation")

_IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".gif", ".bmp")
# Standard ImageNet 2012 split sizes, used when TFRecord counts are not given (counting would
# read every shard).
_IMAGENET_NUM_EXAMPLES = {"train": 1_281_167, "validation": 50_000}
_FOLDER_SPLIT_NAMES = {"train": ("train",), "validation": ("val", "validation")}
_TFRECORD_PATTERNS = {"train": "train-*", "validation": "validation-*"}


class Source:
    """Base class of the readers.

    Attributes:
        name: the source name in `SOURCES`.
        num_classes: number of classes.
        class_names: names in label order.
    """

    name: str = ""
    num_classes: int
    class_names: list[str]

    def num_examples(self, split: str) -> int:
        """Number of examples in `split` ("train" or "validation")."""
        raise NotImplementedError

    def read(
        self,
        split: str,
        *,
        input_context: tf.distribute.InputContext | None = None,
        shuffle_files: bool = False,
        seed: int | None = None,
        repeat: bool = False,
        deterministic: bool = True,
    ) -> tf.data.Dataset:
        """Encoded examples `(image_bytes, label, key)` of this input pipeline's share of `split`.

        Args:
            split: "train" or "validation".
            input_context: the pipeline's `tf.distribute.InputContext`; None reads everything.
            shuffle_files: shuffle the file order (reshuffled every epoch).
            seed: seed of the file shuffle (None: random).
            repeat: repeat the files forever (before interleaving, so epochs overlap smoothly).
            deterministic: keep a reproducible order in the parallel reads.
        """
        raise NotImplementedError


def _shard_and_shuffle(
    ds: tf.data.Dataset,
    num_files: int,
    input_context: tf.distribute.InputContext | None,
    shuffle_files: bool,
    seed: int | None,
    repeat: bool,
    what: str,
) -> tf.data.Dataset:
    if input_context is not None and input_context.num_input_pipelines > 1:
        if num_files < input_context.num_input_pipelines:
            raise ValueError(
                f"Cannot shard {num_files} {what} over {input_context.num_input_pipelines} input "
                "pipelines: every pipeline needs at least one file. Use fewer workers or more "
                "files."
            )
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if shuffle_files:
        ds = ds.shuffle(num_files, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds


def _names(names: list[str], shown: int = 5) -> str:
    listed = ", ".join(repr(n) for n in names[:shown])
    return listed + (f" and {len(names) - shown} more" if len(names) > shown else "")


def check_splits(source: Source, global_batch_size: int) -> dict[str, int]:
    """Lists both splits once, so that data errors come before the first training step.

    Folder sources then have checked their class lists (every validation class is a training
    class; no empty training class); every source has counted its examples.

    Args:
        source: the data set.
        global_batch_size: the training batch; the training split must fill one.

    Returns:
        {"train": n, "validation": m}.

    Raises:
        ValueError / FileNotFoundError: naming the data set and what is wrong with it.
    """
    counts = {split: source.num_examples(split) for split in SPLITS}
    if counts["train"] < global_batch_size:
        raise ValueError(
            f"The training split has {counts['train']} images, fewer than one batch: use a "
            f"batch_size of at most {counts['train']}. Received: batch_size={global_batch_size}"
        )
    if counts["validation"] < 1:
        raise ValueError(f"The {source.name} data set has no validation images.")
    return counts


class FolderSource(Source):
    """ImageNet-style folders: `<root>/train/<class>/*.JPEG`, `<root>/val/<class>/*.JPEG`.

    Classes are the sub-folders of the train folder, labels in sorted folder-name order (the order
    of ImageNet's wnids and of tfds `imagenet2012`). The validation folder may also be named
    `validation`. File extensions .JPEG/.jpg/.png/.gif/.bmp in any case are read.

    Args:
        root: the data set folder.
        name: the name reported as `.name`.
    """

    def __init__(self, root: str | os.PathLike, name: str = "folder"):
        self.name = name
        self.root = os.fspath(root)
        expected = (
            "Expected ImageNet-style folders <root>/train/<class>/*.JPEG and "
            "<root>/val/<class>/*.JPEG (classes in sorted folder-name order)."
        )
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"Folder data set not found at {self.root!r}. {expected}")
        train_dir = self._split_dir("train")
        if train_dir is None:
            raise FileNotFoundError(f"No 'train' folder in {self.root!r}. {expected}")
        self.class_names = sorted(entry.name for entry in os.scandir(train_dir) if entry.is_dir())
        if not self.class_names:
            raise ValueError(f"No class folders in {train_dir!r}. {expected}")
        self.num_classes = len(self.class_names)
        self._label_of = {name: i for i, name in enumerate(self.class_names)}
        self._files: dict[str, tuple[list[str], list[int]]] = {}

    def _split_dir(self, split: str) -> str | None:
        for name in _FOLDER_SPLIT_NAMES[split]:
            path = os.path.join(self.root, name)
            if os.path.isdir(path):
                return path
        return None

    def files(self, split: str) -> tuple[list[str], list[int]]:
        """Sorted image paths of `split` and their labels.

        Args:
            split: "train" or "validation".
        """
        check_choice("split", split, SPLITS)
        if split not in self._files:
            split_dir = self._split_dir(split)
            if split_dir is None:
                raise FileNotFoundError(
                    f"No {' or '.join(map(repr, _FOLDER_SPLIT_NAMES[split]))} folder in "
                    f"{self.root!r}. "
                    f"Expected <root>/{_FOLDER_SPLIT_NAMES[split][0]}/<class>/*.JPEG."
                )
            paths, labels, unknown, empty = [], [], [], []
            for entry in sorted(os.scandir(split_dir), key=lambda e: e.name):
                if not entry.is_dir():
                    continue
                if entry.name not in self._label_of:
                    unknown.append(entry.name)
                    continue
                images = [
                    name
                    for name in sorted(os.listdir(entry.path))
                    if name.lower().endswith(_IMAGE_EXTENSIONS)
                ]
                if not images:
                    empty.append(entry.name)
                for file_name in images:
                    paths.append(os.path.join(entry.path, file_name))
                    labels.append(self._label_of[entry.name])
            if unknown:
                # All of them at once: the data set is fixed in one go, not one rerun per class.
                raise ValueError(
                    f"{len(unknown)} class folder(s) of {split_dir!r} are not among the "
                    f"{self.num_classes} training classes of {self._split_dir('train')!r}: "
                    f"{_names(unknown)}. Received: data_dir={self.root!r}"
                )
            if not paths:
                raise FileNotFoundError(
                    f"No image files (*.JPEG, *.jpg, *.png) in the class folders of {split_dir!r}."
                )
            if empty and split == "train":
                # The folder would still be a class (a label, an output of the model) without a
                # single example to learn it from.
                raise ValueError(
                    f"{len(empty)} training class folder(s) of {split_dir!r} hold no image files "
                    f"(*.JPEG, *.jpg, *.png, *.gif, *.bmp): {_names(empty)}. Remove them or add "
                    f"images. Received: data_dir={self.root!r}"
                )
            self._files[split] = (paths, labels)
        return self._files[split]

    def num_examples(self, split: str) -> int:
        return len(self.files(split)[0])

    def read(
        self,
        split: str,
        *,
        input_context: tf.distribute.InputContext | None = None,
        shuffle_files: bool = False,
        seed: int | None = None,
        repeat: bool = False,
        deterministic: bool = True,
    ) -> tf.data.Dataset:
        paths, labels = self.files(split)
        ds = tf.data.Dataset.from_tensor_slices((tf.constant(paths), tf.constant(labels, tf.int32)))
        ds = _shard_and_shuffle(
            ds, len(paths), input_context, shuffle_files, seed, repeat, "image files"
        )
        return ds.map(
            lambda path, label: (tf.io.read_file(path), label, path),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )


class TFRecordSource(Source):
    """TFRecord shards in the common ImageNet layout (Inception / TPU `build_imagenet_data.py`).

    Files `<root>/train-00000-of-01024`, ..., `<root>/validation-00000-of-00128`, each record a
    `tf.train.Example` with `image/encoded` (JPEG bytes) and `image/class/label` (int64).

    Those scripts store labels 1..1000 and keep 0 for a "background" class, so the default
    `label_offset=1` maps them to 0..999. For shards with 0-based labels pass `label_offset=0`.
    A label outside [0, num_classes) after the offset stops the pipeline with an error naming
    `label_offset`, rather than training on wrong labels.

    Args:
        root: folder of the shards.
        num_classes: number of classes; default: the number of lines of `<root>/labels.txt` if
            present, else 1000.
        label_offset: subtracted from the stored label (default 1, see above).
        class_names: names in label order; default: `<root>/labels.txt` (one per line) if
            present, else the ImageNet wnids when num_classes is 1000, else "class_<i>".
        num_examples: optional {"train": n, "validation": n}; default: the ImageNet counts for
            1000 classes, else counted by reading the shards once.
        name: the name reported as `.name`.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        num_classes: int | None = None,
        label_offset: int = 1,
        class_names: list[str] | None = None,
        num_examples: dict[str, int] | None = None,
        name: str = "tfrecord",
    ):
        self.name = name
        self.root = os.fspath(root)
        self.label_offset = int(label_offset)
        expected = (
            "Expected TFRecord shards <root>/train-00000-of-NNNNN ... and "
            "<root>/validation-00000-of-NNNNN ... with features 'image/encoded' and "
            "'image/class/label'."
        )
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"TFRecord folder not found at {self.root!r}. {expected}")
        if not glob.glob(os.path.join(self.root, _TFRECORD_PATTERNS["train"])):
            raise FileNotFoundError(f"No 'train-*' shards in {self.root!r}. {expected}")
        labels_file = os.path.join(self.root, "labels.txt")
        if class_names is None and os.path.exists(labels_file):
            with open(labels_file) as f:
                class_names = [line.strip() for line in f if line.strip()]
        if num_classes is None:
            num_classes = len(class_names) if class_names else 1000
        if class_names is None:
            class_names = (
                imagenet.class_ids()
                if num_classes == 1000
                else [f"class_{i}" for i in range(num_classes)]
            )
        if len(class_names) != num_classes:
            raise ValueError(
                f"Got {len(class_names)} class names for num_classes={num_classes}. "
                f"Received: num_classes={num_classes}"
            )
        self.num_classes = num_classes
        self.class_names = list(class_names)
        self._num_examples = dict(num_examples or {})
        if not self._num_examples and num_classes == 1000:
            self._num_examples = dict(_IMAGENET_NUM_EXAMPLES)

    def files(self, split: str) -> list[str]:
        """Sorted shard paths of `split`.

        Args:
            split: "train" or "validation".
        """
        check_choice("split", split, SPLITS)
        paths = sorted(glob.glob(os.path.join(self.root, _TFRECORD_PATTERNS[split])))
        if not paths:
            raise FileNotFoundError(
                f"No {_TFRECORD_PATTERNS[split]!r} TFRecord shards in {self.root!r}."
            )
        return paths

    def num_examples(self, split: str) -> int:
        if split not in self._num_examples:
            ds = tf.data.TFRecordDataset(self.files(split))
            self._num_examples[split] = int(ds.reduce(0, lambda count, _: count + 1))
        return self._num_examples[split]

    def _parse(self, record: tf.Tensor):
        features = tf.io.parse_single_example(
            record,
            {
                "image/encoded": tf.io.FixedLenFeature([], tf.string),
                "image/class/label": tf.io.FixedLenFeature([], tf.int64),
                "image/filename": tf.io.FixedLenFeature([], tf.string, default_value=""),
            },
        )
        label = tf.cast(features["image/class/label"], tf.int32) - self.label_offset
        message = (
            f"TFRecord label out of range [0, {self.num_classes}) after subtracting "
            f"label_offset={self.label_offset}; shards with 0-based labels need label_offset=0."
        )
        with tf.control_dependencies(
            [
                tf.debugging.assert_greater_equal(label, 0, message=message),
                tf.debugging.assert_less(label, self.num_classes, message=message),
            ]
        ):
            label = tf.identity(label)
        return features["image/encoded"], label, features["image/filename"]

    def read(
        self,
        split: str,
        *,
        input_context: tf.distribute.InputContext | None = None,
        shuffle_files: bool = False,
        seed: int | None = None,
        repeat: bool = False,
        deterministic: bool = True,
    ) -> tf.data.Dataset:
        paths = self.files(split)
        ds = tf.data.Dataset.from_tensor_slices(tf.constant(paths))
        ds = _shard_and_shuffle(
            ds, len(paths), input_context, shuffle_files, seed, repeat, "shards"
        )
        ds = ds.interleave(
            lambda path: tf.data.TFRecordDataset(path, buffer_size=8 * 1024 * 1024),
            cycle_length=min(16, len(paths)),
            block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
        return ds.map(self._parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)


IMAGENET2012_INSTRUCTIONS = """\
ImageNet 2012 (tfds 'imagenet2012') is not prepared in data_dir={data_dir!r}.
tfds cannot download it; prepare it once:
  1. Register at https://image-net.org/download-images and download
     ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar.
  2. Put both files into {manual_dir}/
  3. Run:  python -c "from rectifier_zoo import data; data.prepare_imagenet2012({data_dir!r})"
     (or: tfds build imagenet2012 --data_dir={data_dir} --manual_dir={manual_dir})
Alternatively use name='folder' (ImageNet-style folders) or name='tfrecord' (TFRecord shards)."""


def _tfds_data_dir(data_dir: str | os.PathLike | None) -> str:
    if data_dir is not None:
        return os.path.expanduser(os.fspath(data_dir))
    return os.environ.get("TFDS_DATA_DIR") or os.path.join(
        os.path.expanduser("~"), "tensorflow_datasets"
    )


def prepare_imagenet2012(
    data_dir: str | os.PathLike | None = None, manual_dir: str | os.PathLike | None = None
) -> str:
    """Builds tfds `imagenet2012` records from the ILSVRC tar files (hours for the real set).

    Args:
        data_dir: tfds data folder (default `$TFDS_DATA_DIR` or `~/tensorflow_datasets`).
        manual_dir: folder holding ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar
            (default `<data_dir>/downloads/manual`).

    Returns:
        The data_dir.
    """
    import tensorflow_datasets as tfds

    data_dir = _tfds_data_dir(data_dir)
    manual_dir = os.fspath(manual_dir or os.path.join(data_dir, "downloads", "manual"))
    tars = [os.path.join(manual_dir, f"ILSVRC2012_img_{s}.tar") for s in ("train", "val")]
    if not any(os.path.exists(t) for t in tars):
        raise FileNotFoundError(
            IMAGENET2012_INSTRUCTIONS.format(data_dir=data_dir, manual_dir=manual_dir)
        )
    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
    )
    return data_dir


class TFDSImageNetSource(Source):
    """tensorflow-datasets `imagenet2012`, read as encoded JPEG bytes (tfds decoding skipped).

    The data must have been prepared (see `prepare_imagenet2012`); otherwise the constructor raises
    FileNotFoundError with the manual-download steps. Class names are the wnids in tfds order
    (sorted, the same order as ImageNet folders).

    Args:
        data_dir: tfds data folder (default `$TFDS_DATA_DIR` or `~/tensorflow_datasets`).
        name: the dataset name with optional version, e.g. "imagenet2012:5.1.0".
    """

    def __init__(self, data_dir: str | os.PathLike | None = None, name: str = "imagenet2012"):
        import tensorflow_datasets as tfds

        self._tfds = tfds
        self.name = "imagenet2012"
        self.data_dir = _tfds_data_dir(data_dir)
        self.builder = tfds.builder(name, data_dir=self.data_dir)
        if not self.builder.is_prepared():
            raise FileNotFoundError(
                IMAGENET2012_INSTRUCTIONS.format(
                    data_dir=self.data_dir,
                    manual_dir=os.path.join(self.data_dir, "downloads", "manual"),
                )
            )
        label = self.builder.info.features["label"]
        self.num_classes = label.num_classes
        self.class_names = list(label.names)

    def _split_info(self, split: str):
        check_choice("split", split, SPLITS)
        if split not in self.builder.info.splits:
            raise FileNotFoundError(
                f"Split {split!r} of imagenet2012 was not prepared in {self.data_dir!r} (was "
                f"its ILSVRC2012_img_{'val' if split == 'validation' else split}.tar missing?). "
                f"Prepared splits: {sorted(self.builder.info.splits)}"
            )
        return self.builder.info.splits[split]

    def num_examples(self, split: str) -> int:
        return self._split_info(split).num_examples

    def read(
        self,
        split: str,
        *,
        input_context: tf.distribute.InputContext | None = None,
        shuffle_files: bool = False,
        seed: int | None = None,
        repeat: bool = False,
        deterministic: bool = True,
    ) -> tf.data.Dataset:
        tfds = self._tfds
        num_shards = self._split_info(split).num_shards
        shard_examples = False
        if input_context is not None and input_context.num_input_pipelines > 1:
            # tfds shards by file; with fewer files than pipelines fall back to example sharding
            # (each pipeline then reads all files, which only happens for tiny data).
            shard_examples = num_shards < input_context.num_input_pipelines
        options = tf.data.Options()
        options.deterministic = deterministic
        read_config = tfds.ReadConfig(
            options=options,
            input_context=None if shard_examples else input_context,
            shuffle_seed=seed,
            shuffle_reshuffle_each_iteration=True,
            try_autocache=False,
        )
        ds = self.builder.as_dataset(
            split=split,
            shuffle_files=shuffle_files,
            read_config=read_config,
            decoders={"image": tfds.decode.SkipDecoding()},
        )
        if shard_examples:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        if repeat:
            # Not ReadConfig.repeat_filenames: tfds then fails its per-file cardinality check.
            ds = ds.repeat()
        return ds.map(
            lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32), ex["file_name"]),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )


def get_source(name: str, data_dir: str | os.PathLike | None = None, **kwargs) -> Source:
    """Returns the reader of a data set.

    Args:
        name: one of `SOURCES`: "synthetic" (generated into the cache on first use; data_dir
            overrides its folder), "folder" (ImageNet-style folders at data_dir), "tfrecord"
            (ImageNet TFRecord shards at data_dir), "imagenet2012" (tfds, data_dir is the tfds
            data folder).
        data_dir: where the data lives.
        **kwargs: passed to the source: `TFRecordSource` options (num_classes, label_offset, ...)
            or `SyntheticConfig` fields for "synthetic".

    Returns:
        A `Source` with `.num_classes`, `.class_names`, `.num_examples(split)` and `.read(...)`.
    """
    check_choice("dataset", name, SOURCES)
    if data_dir is not None:
        data_dir = os.path.expanduser(os.fspath(data_dir))
    if name == "synthetic":
        return FolderSource(
            synthetic.ensure_synthetic_dataset(data_dir, **kwargs), name="synthetic"
        )
    if name == "imagenet2012":
        return TFDSImageNetSource(data_dir, **kwargs)
    if data_dir is None:
        raise ValueError(
            f"name={name!r} needs data_dir, the data set folder. Received: data_dir=None"
        )
    if name == "folder":
        return FolderSource(data_dir, **kwargs)
    return TFRecordSource(data_dir, **kwargs)
