"""The tiny model and its export, made once for every serving test module that uses them."""

import pytest
from serving_support import CLASSES, CROP, RESIZE


@pytest.fixture(scope="session")
def model():
    rectifier_zoo = pytest.importorskip("rectifier_zoo")
    return rectifier_zoo.model_tiny(classes=len(CLASSES), seed=3)


@pytest.fixture(scope="session")
def exported(model, tmp_path_factory):
    from rectifier_zoo.serving import export

    base = tmp_path_factory.mktemp("exports") / "tiny"
    return export.export_model(
        model,
        str(base),
        class_names=CLASSES,
        metadata={"training_data": "synthetic", "steps": 7, "eval": {"top1_error": 0.5}},
        crop_size=CROP,
        eval_resize=RESIZE,
    )
