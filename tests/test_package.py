"""The package's namespaces and shared rules: what loads what, the one top-k rule, the checks."""

import subprocess
import sys

import numpy as np
import pytest

import rectifier_zoo
from rectifier_zoo import checks, metrics


@pytest.mark.parametrize(
    "statement",
    [
        "import rectifier_zoo",
        "import rectifier_zoo.paper",
        "from rectifier_zoo.data.config import TransformConfig; TransformConfig()",
        "import rectifier_zoo.architectures",
    ],
)
def test_pure_python_parts_load_neither_keras_nor_tensorflow(statement):
    loaded = "sorted({'keras', 'tensorflow', 'jax'} & set(sys.modules))"
    code = f"{statement}; import sys; print({loaded})"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_lazy_names_resolve_and_list():
    for name in rectifier_zoo.__all__:
        assert getattr(rectifier_zoo, name) is not None
    assert set(rectifier_zoo.__all__) <= set(dir(rectifier_zoo))
    with pytest.raises(AttributeError, match="no attribute 'model_z'"):
        rectifier_zoo.model_z  # noqa: B018


def test_top_k_counts_ties_in_the_labels_favour():
    scores = np.array(
        [
            [0.1, 0.5, 0.4],  # label 1 first
            [0.4, 0.4, 0.2],  # label 1 tied for first: a top-1 hit
            [0.5, 0.3, 0.2],  # label 2 last
            [0.25, 0.25, 0.25],  # all tied
        ],
        np.float32,
    )
    labels = np.array([1, 1, 2, 0])
    top1 = np.asarray(metrics.top_k_correct(labels, scores, 1))
    top2 = np.asarray(metrics.top_k_correct(labels, scores, 2))
    np.testing.assert_array_equal(top1, [True, True, False, True])
    np.testing.assert_array_equal(top2, [True, True, False, True])
    np.testing.assert_array_equal(np.asarray(metrics.top_k_correct(labels, scores, 3)), [True] * 4)


def test_top_k_rows_with_nan_or_inf_are_misses():
    scores = np.array([[np.nan, 0.5], [np.nan, np.nan], [np.inf, 0.0], [0.2, 0.8]], np.float32)
    hits = np.asarray(metrics.top_k_correct(np.array([1, 0, 0, 1]), scores, 1))
    np.testing.assert_array_equal(hits, [False, False, False, True])


def test_check_choice_names_choices_and_value():
    checks.check_choice("protocol", "dense", ("center", "dense"))
    with pytest.raises(
        ValueError,
        match=r"Unknown protocol\. Expected one of \('center', 'dense'\)\. Received: protocol='x'",
    ):
        checks.check_choice("protocol", "x", ["center", "dense"])
