"""Readers on tiny data in each real layout: folders, TFRecords, tfds imagenet2012, synthetic."""

import os

import numpy as np
import pytest
import tensorflow as tf

from rectifier_zoo import data
from rectifier_zoo.data import testing

pytestmark = pytest.mark.tf_only

TINY = data.TransformConfig(crop_size=16, min_scale=16, max_scale=24, eval_resize=20)


def _keys_and_labels(ds):
    return [(key.numpy().decode(), int(label)) for _, label, key in ds]


@pytest.fixture(scope="module")
def folder_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    return testing.write_image_folder(
        root, ["n02", "n01", "n03"], {"train": 4, "val": 2}, size=(30, 40)
    )


def test_unknown_source_name_lists_choices():
    with pytest.raises(
        ValueError, match=r"synthetic.*folder.*tfrecord.*imagenet2012.*dataset='mnist'"
    ):
        data.get_source("mnist")
    assert data.SOURCES == ("synthetic", "folder", "tfrecord", "imagenet2012")


def test_folder_and_tfrecord_need_data_dir():
    for name in ("folder", "tfrecord"):
        with pytest.raises(ValueError, match="data_dir=None"):
            data.get_source(name)


def test_folder_source_classes_sorted_and_counts(folder_root):
    source = data.get_source("folder", folder_root)
    assert source.class_names == ["n01", "n02", "n03"]
    assert source.num_classes == 3
    assert source.num_examples("train") == 12 and source.num_examples("validation") == 6
    read = _keys_and_labels(source.read("validation"))
    assert len(read) == 6
    for key, label in read:
        assert os.path.basename(os.path.dirname(key)) == source.class_names[label]
    with pytest.raises(ValueError, match="split='test'"):
        source.num_examples("test")


def test_folder_source_missing_or_wrong_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"<root>/train/<class>/\*\.JPEG"):
        data.get_source("folder", tmp_path / "missing")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.JPEG").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="No 'train' folder"):
        data.get_source("folder", tmp_path)
    (tmp_path / "train" / "cat").mkdir(parents=True)
    source = data.get_source("folder", tmp_path)
    with pytest.raises(FileNotFoundError, match="No image files"):
        source.num_examples("train")
    with pytest.raises(FileNotFoundError, match="'val' or 'validation'"):
        source.num_examples("validation")


def test_folder_sharding_by_input_context_is_disjoint_and_complete(folder_root):
    source = data.get_source("folder", folder_root)
    shards = []
    for pipeline in range(3):
        context = tf.distribute.InputContext(3, pipeline, 3)
        shards.append(
            {key for key, _ in _keys_and_labels(source.read("train", input_context=context))}
        )
    assert all(len(s) == 4 for s in shards)
    assert (
        not (shards[0] & shards[1]) and not (shards[1] & shards[2]) and not (shards[0] & shards[2])
    )
    assert len(set.union(*shards)) == 12


def test_folder_file_shuffle_is_seeded(folder_root):
    source = data.get_source("folder", folder_root)
    first = _keys_and_labels(source.read("train", shuffle_files=True, seed=3))
    second = _keys_and_labels(source.read("train", shuffle_files=True, seed=3))
    other = _keys_and_labels(source.read("train", shuffle_files=True, seed=4))
    assert first == second and first != other and sorted(first) == sorted(other)


def _tfrecord_dir(root, label_offset=1, num_classes=3, per_split=(12, 5), shards=(4, 2)):
    for split, count, num_shards in zip(("train", "validation"), per_split, shards, strict=True):
        examples = [
            (testing.encode_jpeg(testing.smooth_image(i, 20, 24)), i % num_classes + label_offset)
            for i in range(count)
        ]
        testing.write_tfrecords(root, split, num_shards, examples)
    return root


def test_tfrecord_source_default_offset_is_one(tmp_path):
    root = _tfrecord_dir(tmp_path, label_offset=1)
    source = data.get_source("tfrecord", root, num_classes=3)
    assert source.label_offset == 1
    assert source.class_names == ["class_0", "class_1", "class_2"]
    assert source.num_examples("train") == 12 and source.num_examples("validation") == 5
    labels = sorted(label for _, label in _keys_and_labels(source.read("train")))
    assert labels == sorted([i % 3 for i in range(12)])
    ds = data.make_dataset(source, "validation", global_batch_size=4, config=TINY)
    batches = [(x.shape, y.numpy()) for x, y in ds]
    assert [b[0] for b in batches] == [(4, 16, 16, 3), (1, 16, 16, 3)]


def test_tfrecord_zero_based_labels_and_wrong_offset_error(tmp_path):
    root = _tfrecord_dir(tmp_path, label_offset=0)
    source = data.get_source("tfrecord", root, num_classes=3, label_offset=0)
    assert sorted(label for _, label in _keys_and_labels(source.read("validation"))) == [
        0,
        0,
        1,
        1,
        2,
    ]
    wrong = data.get_source("tfrecord", root, num_classes=3)  # default offset 1
    with pytest.raises(tf.errors.InvalidArgumentError, match="label_offset=1"):
        _keys_and_labels(wrong.read("validation"))


def test_tfrecord_imagenet_defaults_and_labels_file(tmp_path):
    root = _tfrecord_dir(tmp_path / "a")
    source = data.get_source("tfrecord", root)
    assert source.num_classes == 1000 and source.class_names[0] == "n01440764"
    assert source.num_examples("train") == 1_281_167  # ImageNet counts, no full read
    other = _tfrecord_dir(tmp_path / "b")
    (other / "labels.txt").write_text("cat\ndog\nfox\n")
    source = data.get_source("tfrecord", other)
    assert source.class_names == ["cat", "dog", "fox"] and source.num_classes == 3


def test_tfrecord_missing_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="image/encoded"):
        data.get_source("tfrecord", tmp_path)
    testing.write_tfrecords(tmp_path, "train", 1, [(b"x", 1)])
    source = data.get_source("tfrecord", tmp_path, num_classes=2)
    with pytest.raises(FileNotFoundError, match="validation-"):
        source.files("validation")


def test_tfrecord_sharding_is_by_file_and_disjoint(tmp_path):
    root = _tfrecord_dir(tmp_path)
    source = data.get_source("tfrecord", root, num_classes=3)
    names = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(2, pipeline, 2)
        names.append(
            [key for key, _ in _keys_and_labels(source.read("train", input_context=context))]
        )
    assert len(names[0]) == len(names[1]) == 6
    assert not set(names[0]) & set(names[1])
    with pytest.raises(ValueError, match="Cannot shard 2 shards over 3 input pipelines"):
        source.read("validation", input_context=tf.distribute.InputContext(3, 0, 3))


def test_imagenet2012_not_prepared_explains_manual_download(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        data.get_source("imagenet2012", tmp_path)
    message = str(info.value)
    assert "ILSVRC2012_img_train.tar" in message and "ILSVRC2012_img_val.tar" in message
    assert os.path.join(str(tmp_path), "downloads", "manual") in message
    assert "prepare_imagenet2012" in message
    with pytest.raises(FileNotFoundError, match="ILSVRC2012_img_val.tar"):
        data.prepare_imagenet2012(tmp_path)


def test_imagenet2012_tfds_from_fake_manual_dir(tmp_path):
    """The real tfds builder prepares tiny ILSVRC tars, and our reader reads the records."""
    pytest.importorskip("tensorflow_datasets")
    wnids = ["n01440764", "n01443537", "n01484850"]
    testing.write_fake_ilsvrc2012_tars(
        tmp_path / "downloads" / "manual", wnids, train_per_class=3, num_val=4
    )
    data.prepare_imagenet2012(tmp_path)
    source = data.get_source("imagenet2012", tmp_path)
    assert source.num_classes == 1000 and source.class_names[:3] == wnids
    assert source.num_examples("train") == 9 and source.num_examples("validation") == 4
    train = _keys_and_labels(source.read("train"))
    assert sorted(train) == sorted(
        (f"{w}_{i}.JPEG", c) for c, w in enumerate(wnids) for i in (1, 2, 3)
    )
    # Val labels come from tfds's bundled list, by sorted file name: ImageNet's first val images.
    val = dict(_keys_and_labels(source.read("validation")))
    expected = ["n01751748", "n09193705", "n02105855", "n04263257"]
    assert {k: source.class_names[v] for k, v in val.items()} == {
        f"ILSVRC2012_val_{k:08d}.JPEG": w for k, w in enumerate(expected, start=1)
    }
    # Fewer tfds shards (1) than pipelines (2): falls back to example sharding, still disjoint.
    halves = [
        {
            k
            for k, _ in _keys_and_labels(
                source.read("validation", input_context=tf.distribute.InputContext(2, p, 2))
            )
        }
        for p in range(2)
    ]
    assert not halves[0] & halves[1] and len(halves[0] | halves[1]) == 4
    ds = data.make_dataset(
        source, "train", is_training=True, global_batch_size=4, config=TINY, seed=1
    )
    images, labels = next(iter(ds))
    assert images.shape == (4, 16, 16, 3) and labels.dtype == tf.int32
    assert np.all(labels.numpy() < 3)


def test_synthetic_source_uses_given_folder(tmp_path):
    source = data.get_source(
        "synthetic",
        tmp_path,
        **{
            k: getattr(data.TINY_CONFIG, k)
            for k in ("num_classes", "train_images", "val_images", "min_side", "max_side", "seed")
        },
    )
    assert source.name == "synthetic" and source.num_classes == 4
    assert source.num_examples("train") == 16 and source.num_examples("validation") == 8
    assert os.path.exists(tmp_path / "COMPLETE.json")


def test_folder_unknown_validation_classes_are_listed_together(tmp_path):
    root = testing.write_image_folder(tmp_path, ["a", "b"], {"train": 2, "val": 1}, size=(24, 24))
    testing.write_image_folder(tmp_path, ["x", "y"], {"val": 1}, size=(24, 24))
    source = data.get_source("folder", root)
    with pytest.raises(ValueError, match=r"2 class folder\(s\).*'x', 'y'.*Received: data_dir="):
        source.num_examples("validation")


def test_folder_empty_training_class_is_an_error_not_a_class(tmp_path):
    root = testing.write_image_folder(tmp_path, ["a", "b"], {"train": 2, "val": 1}, size=(24, 24))
    (tmp_path / "train" / "c").mkdir()
    (tmp_path / "train" / "c" / "notes.txt").write_text("not an image")
    source = data.get_source("folder", root)
    with pytest.raises(ValueError, match=r"hold no image files.*'c'.*Received: data_dir="):
        source.num_examples("train")
    # An empty validation folder is only a class without validation images.
    (tmp_path / "train" / "c" / "c_0.JPEG").write_bytes(testing.encode_jpeg(np.zeros((8, 8, 3))))
    (tmp_path / "val" / "c").mkdir()
    assert data.get_source("folder", root).num_examples("validation") == 2


def test_check_splits_counts_both_and_needs_one_batch(folder_root):
    source = data.get_source("folder", folder_root)
    assert data.check_splits(source, 12) == {"train": 12, "validation": 6}
    with pytest.raises(ValueError, match=r"fewer than one batch.*Received: batch_size=13"):
        data.check_splits(source, 13)


def test_digits_folder_is_grayscale_jpeg_read_as_rgb(tmp_path):
    pytest.importorskip("sklearn")
    root = testing.write_digits_folder(tmp_path, upscale=4)
    source = data.get_source("folder", root)
    assert source.class_names == [str(d) for d in range(10)]
    assert data.check_splits(source, 128) == {"train": 1437, "validation": 360}
    path = source.files("train")[0][0]
    with open(path, "rb") as f:
        assert tf.io.decode_jpeg(f.read()).shape == (32, 32, 1)  # single-channel files
    config = data.TransformConfig(crop_size=24, min_scale=24, max_scale=32, eval_resize=28)
    images, labels = next(iter(data.make_dataset(source, "train", True, 8, config=config, seed=0)))
    assert images.shape == (8, 24, 24, 3) and labels.shape == (8,)
    # Grey in, grey out: the three channels agree before the (colour) PCA lighting.
    no_light = data.TransformConfig(
        crop_size=24, min_scale=24, max_scale=32, eval_resize=28, pca_lighting=0.0
    )
    images, _ = next(iter(data.make_dataset(source, "validation", False, 8, config=no_light)))
    np.testing.assert_allclose(images[..., 0], images[..., 2])
