"""make_dataset: batching per replica, sharding, determinism, skipping broken files, errors."""

import numpy as np
import pytest
import tensorflow as tf

from rectifier_zoo import data
from rectifier_zoo.data import testing

pytestmark = pytest.mark.tf_only

TINY = data.TransformConfig(crop_size=16, min_scale=16, max_scale=24, eval_resize=20)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    return data.FolderSource(
        testing.write_image_folder(root, ["a", "b", "c"], {"train": 6, "val": 3}, size=(24, 32))
    )


@pytest.fixture()
def broken_folder(tmp_path):
    root = testing.write_image_folder(tmp_path, ["a", "b"], {"train": 3, "val": 3}, size=(24, 32))
    jpeg = testing.encode_jpeg(testing.smooth_image(9, 24, 32))
    (tmp_path / "val" / "a" / "truncated.JPEG").write_bytes(jpeg[: len(jpeg) // 2])
    (tmp_path / "val" / "a" / "garbage.JPEG").write_bytes(b"<html>404 not found</html>" * 8)
    # Valid start and end markers but a destroyed header: only the decoder itself notices.
    (tmp_path / "val" / "b" / "bad_header.JPEG").write_bytes(jpeg[:20] + b"\x13" * 100 + jpeg[120:])
    (tmp_path / "val" / "b" / "image.png").write_bytes(
        tf.io.encode_png(testing.smooth_image(3, 20, 20)).numpy()
    )
    return data.FolderSource(root)


def _collect(ds):
    images, labels = [], []
    for x, y in ds:
        images.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels)


def test_training_batches_shapes_and_range(folder):
    ds = data.make_dataset(folder, "train", True, global_batch_size=4, config=TINY, seed=0)
    images, labels = next(iter(ds))
    assert images.shape == (4, 16, 16, 3) and images.dtype == tf.float32
    assert labels.dtype == tf.int32
    assert 0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 255
    # Repeats forever and drops the remainder by default in training: 18 images, batches of 4.
    assert all(x.shape[0] == 4 for x, _ in ds.take(10))


def test_validation_keeps_every_image_in_order(folder):
    ds = data.make_dataset(folder, "validation", False, global_batch_size=4, config=TINY)
    sizes = [int(y.shape[0]) for _, y in ds]
    assert sizes == [4, 4, 1]
    _, labels = _collect(ds)
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 1, 2, 2, 2])
    first, _ = _collect(ds)
    second, _ = _collect(data.make_dataset(folder, "validation", False, 4, config=TINY))
    np.testing.assert_array_equal(first, second)


def test_seeded_training_is_deterministic(folder):
    make = lambda seed: data.make_dataset(folder, "train", True, 6, config=TINY, seed=seed)  # noqa: E731
    a_images, a_labels = _collect(make(5).take(6))
    b_images, b_labels = _collect(make(5).take(6))
    c_images, _ = _collect(make(6).take(6))
    np.testing.assert_array_equal(a_images, b_images)
    np.testing.assert_array_equal(a_labels, b_labels)
    assert not np.array_equal(a_images, c_images)
    # Each epoch (18 files) holds every file once, in a new order with new augmentations.
    for epoch in (a_labels[:18], a_labels[18:36]):
        assert sorted(epoch.tolist()) == [0] * 6 + [1] * 6 + [2] * 6
    assert not np.array_equal(a_images[:18], a_images[18:36])


def test_input_context_shards_and_per_replica_batch(folder):
    seen = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=4
        )
        ds = data.make_dataset(folder, "validation", False, 8, input_context=context, config=TINY)
        images, labels = _collect(ds)
        assert [int(y.shape[0]) for _, y in ds][0] == 2  # 8 / 4 replicas
        seen.append({(img.tobytes(), int(lab)) for img, lab in zip(images, labels, strict=True)})
    assert not seen[0] & seen[1]
    assert len(seen[0]) + len(seen[1]) == 9


def test_distribute_datasets_from_function(folder):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    dist = strategy.distribute_datasets_from_function(
        lambda context: data.make_dataset(
            folder, "train", True, 6, input_context=context, config=TINY, seed=1
        )
    )
    images, labels = next(iter(dist))
    assert images.shape == (6, 16, 16, 3) and labels.shape == (6,)


def test_broken_files_are_skipped_and_counted(broken_folder):
    data.reset_skipped_images()
    ds = data.make_dataset(broken_folder, "validation", False, 4, config=TINY)
    _, labels = _collect(ds)
    # 6 good JPEGs and the PNG survive; truncated, garbage and bad-header files are skipped.
    assert len(labels) == 7
    assert data.num_skipped_images() == 3
    names = sorted(name.rsplit("/", 1)[-1] for name in data.skipped_image_names())
    assert names == ["bad_header.JPEG", "garbage.JPEG", "truncated.JPEG"]
    # Training on the same files never stops either.
    train = data.make_dataset(broken_folder, "validation", True, 4, config=TINY, seed=0)
    assert len(list(train.take(5))) == 5
    data.reset_skipped_images()
    assert data.num_skipped_images() == 0


def test_unfused_pipeline_matches_fused(folder):
    fused, _ = _collect(data.make_dataset(folder, "validation", False, 9, config=TINY))
    unfused, _ = _collect(
        data.make_dataset(folder, "validation", False, 9, config=TINY, fused=False)
    )
    assert np.mean(np.abs(fused - unfused)) < 1.0


def test_reader_errors_are_not_swallowed(tmp_path):
    examples = [(testing.encode_jpeg(testing.smooth_image(i, 16, 16)), 0) for i in range(3)]
    testing.write_tfrecords(tmp_path, "train", 1, examples)
    testing.write_tfrecords(tmp_path, "validation", 1, examples)
    source = data.get_source("tfrecord", tmp_path, num_classes=2)  # 0-based data, offset 1
    with pytest.raises(tf.errors.InvalidArgumentError, match="label_offset"):
        next(iter(data.make_dataset(source, "train", True, 2, config=TINY, seed=0)))


def test_bad_arguments(folder):
    with pytest.raises(ValueError, match="split='test'"):
        data.make_dataset(folder, "test", False, 4, config=TINY)
    with pytest.raises(ValueError, match="global_batch_size=0"):
        data.make_dataset(folder, "train", True, 0, config=TINY)
    with pytest.raises(ValueError, match="config="):
        data.make_dataset(folder, "train", True, 4, config={"crop_size": 16})
    with pytest.raises(ValueError, match="Received: dataset='imagenet'"):
        data.make_dataset("imagenet", "train", True, 4)
    with pytest.raises(ValueError, match="decode='fast'"):
        data.train_transform(tf.constant(b""), tf.constant([0, 0]), TINY, decode="fast")
