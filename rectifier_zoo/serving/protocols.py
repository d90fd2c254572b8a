"""The evaluator's test protocols (pure Python: the command line lists them without TensorFlow).

Sec. 2.3, "Testing", and the single-view and 10-view results of Sec. 3 (Tables 2-7):

- `center`: shorter side `paper.TEST_RESIZE` (the export's `eval_resize`), centre
  `paper.CROP_SIZE` crop;
- `ten_view`: the same shorter side, the 4 corner and the centre crops plus their mirrors;
- `dense`: at each scale of `paper.DENSE_SCALES` the whole image, shorter side s, scored by every
  window of `paper.DENSE_WINDOW_CELLS` cells of the last conv map, and the same on the mirror;
  all scores averaged.
"""

from rectifier_zoo import paper
from rectifier_zoo.serving import contract

CENTER = "center"
TEN_VIEW = "ten_view"
DENSE = "dense"
PROTOCOLS = (CENTER, TEN_VIEW, DENSE)
# The export endpoint each protocol scores with.
ENDPOINTS = {
    CENTER: contract.PREDICT_IMAGES,
    TEN_VIEW: contract.PREDICT_IMAGES,
    DENSE: contract.DENSE,
}
DEFAULT_DENSE_SCALES = paper.DENSE_SCALES


def default_scales(protocol: str, eval_resize: int = paper.TEST_RESIZE) -> tuple[int, ...]:
    """The shorter sides a protocol is scored at when none are given."""
    return DEFAULT_DENSE_SCALES if protocol == DENSE else (eval_resize,)
