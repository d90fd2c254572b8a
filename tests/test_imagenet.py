"""ImageNet helpers: the class list shipped with the package, the mean, `decode_predictions`."""

import re

import keras
import numpy as np
import pytest

import rectifier_zoo
from rectifier_zoo import imagenet


def test_class_ids_are_the_1000_sorted_wordnet_ids():
    ids = imagenet.class_ids()
    assert len(ids) == imagenet.NUM_CLASSES == 1000
    assert len(set(ids)) == 1000
    # tfds and the Caffe/Keras class indices both order the synsets by WordNet id.
    assert ids == sorted(ids)
    assert all(re.fullmatch(r"n\d{8}", wnid) for wnid in ids)
    assert ids[0] == "n01440764"
    assert ids[-1] == "n15075141"


def test_class_names():
    names = imagenet.class_names()
    assert len(names) == 1000
    assert names[0] == "tench"
    assert names[1] == "goldfish"
    assert names[-1] == "toilet tissue"
    assert all(names) and all("," not in name for name in names)


def test_class_lists_are_fresh_copies():
    imagenet.class_ids().clear()
    assert len(imagenet.class_ids()) == 1000


def test_mean_values():
    # The Caffe / VGG figures: mean RGB of the ILSVRC-2012 training set on the 0..255 scale.
    assert imagenet.IMAGENET_MEAN_RGB == (123.68, 116.779, 103.939)
    assert rectifier_zoo.IMAGENET_MEAN_RGB is imagenet.IMAGENET_MEAN_RGB


def test_model_subtracts_the_mean():
    model = rectifier_zoo.model_tiny(input_shape=(16, 16, 3), classes=2)
    mean_subtraction = keras.Model(model.input, model.get_layer("mean_subtraction").output)
    images = np.broadcast_to(np.float32(imagenet.IMAGENET_MEAN_RGB), (1, 16, 16, 3))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(mean_subtraction(images)), 0, atol=1e-5)


def _scores(batch: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((batch, 1000)).astype("float32")


def test_decode_predictions_top_k_order():
    preds = _scores()
    decoded = imagenet.decode_predictions(preds, top=5)
    ids, names = imagenet.class_ids(), imagenet.class_names()
    assert len(decoded) == 3
    for row, result in zip(preds, decoded, strict=True):
        best = np.argsort(row)[::-1][:5]
        assert result == [(ids[i], names[i], float(row[i])) for i in best]
        scores = [score for _, _, score in result]
        assert scores == sorted(scores, reverse=True)
        assert all(type(score) is float for score in scores)


def test_decode_predictions_known_classes():
    preds = np.zeros((2, 1000), "float32")
    preds[0, 0], preds[0, 999], preds[0, 1] = 0.7, 0.2, 0.1
    preds[1, 1] = 1.0
    decoded = imagenet.decode_predictions(preds, top=3)
    assert [entry[:2] for entry in decoded[0]] == [
        ("n01440764", "tench"),
        ("n15075141", "toilet tissue"),
        ("n01443537", "goldfish"),
    ]
    assert decoded[1][0] == ("n01443537", "goldfish", 1.0)


def test_decode_predictions_ties_keep_class_order():
    preds = np.zeros((1, 1000), "float32")
    preds[0, [500, 20, 700]] = 0.5
    decoded = imagenet.decode_predictions(preds, top=5)[0]
    ids = imagenet.class_ids()
    # Equal scores come out in class-index order, the zeros after them also in index order.
    assert [wnid for wnid, _, _ in decoded] == [ids[20], ids[500], ids[700], ids[0], ids[1]]


def test_decode_predictions_default_top_and_full_ranking():
    preds = _scores(batch=1)
    assert len(imagenet.decode_predictions(preds)[0]) == 5
    everything = imagenet.decode_predictions(preds, top=1000)[0]
    assert sorted(wnid for wnid, _, _ in everything) == imagenet.class_ids()


def test_decode_predictions_keras_tensor_matches_numpy():
    preds = _scores()
    tensor = keras.ops.softmax(keras.ops.convert_to_tensor(preds), axis=-1)
    assert not isinstance(tensor, np.ndarray)
    assert imagenet.decode_predictions(tensor, top=4) == imagenet.decode_predictions(
        keras.ops.convert_to_numpy(tensor), top=4
    )
    assert rectifier_zoo.decode_predictions is imagenet.decode_predictions


@pytest.mark.parametrize("shape", [(1000,), (2, 999), (2, 1001), (2, 1000, 1), ()])
def test_decode_predictions_bad_shape_raises(shape):
    with pytest.raises(
        ValueError, match=r"expects a batch of ImageNet scores, shape \(batch, 1000\)"
    ):
        imagenet.decode_predictions(np.zeros(shape, "float32"))


@pytest.mark.parametrize("top", [0, -1, 1001, True, 2.0, "5", None])
def test_decode_predictions_bad_top_raises(top):
    with pytest.raises(
        ValueError, match=r"`top` must be an integer in \[1, 1000\]. Received: top="
    ):
        imagenet.decode_predictions(_scores(batch=1), top=top)
