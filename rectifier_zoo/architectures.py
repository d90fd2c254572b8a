"""The paper's architectures as data: one `Architecture` per model, read by `models.build_model`.

Stages follow the paper's tables row by row. Each `ConvStage` is `num_layers` convolutions
(each followed by the rectifier), then an optional max-pool. Padding is inferred from the
feature-map sizes in Tables 1 and 3 (Sec. 2.3): the 7x7/2 stem pads 3 pixels per side, the 3x3
convolutions keep the size ("same"), stacked 2x2 convolutions pad 1 pixel per side and none in
turn (`ALTERNATE`), the max-pools are "valid" (docs/choices.md).
"""

import dataclasses
import math

from rectifier_zoo import paper
from rectifier_zoo.checks import check_choice

SAME = "same"
# Stacked 2x2 convs: the 1st, 3rd, ... pad 1 pixel on every side (n -> n + 1), the others none
# (n + 1 -> n). A 2x2 kernel cannot keep the size with symmetric padding; alternating keeps it
# every two layers with centred receptive fields, where "same" (bottom/right zeros on every
# layer) pulls them towards the top-left and drains small maps over 20+ layers.
ALTERNATE = "alternate"


@dataclasses.dataclass(frozen=True)
class ConvStage:
    """`num_layers` k x k convolutions with `filters` outputs, then an optional max-pool.

    Attributes:
        num_layers: convolutions in the stage.
        filters: output channels of each convolution.
        kernel_size: k of the k x k kernels.
        strides: stride of the first convolution (the others use 1).
        padding: `"same"`, `ALTERNATE` (1 zero pixel on every side before the odd-numbered
            convs, none before the others), or a number of zero pixels added on every side
            ("valid" conv after it).
        pool_size: size of the max-pool after the stage; `None` for no pool.
        pool_strides: stride of that pool.
    """

    num_layers: int
    filters: int
    kernel_size: int
    strides: int = 1
    padding: str | int = SAME
    pool_size: int | None = None
    pool_strides: int | None = None

    def output_size(self, size: int) -> int:
        """Spatial size after the stage for an input of `size` pixels (0 if it vanishes)."""
        for index in range(self.num_layers):
            strides = self.strides if index == 0 else 1
            padding = self.layer_padding(index)
            if padding == SAME:
                size = math.ceil(size / strides)
            else:
                size = max((size + 2 * padding - self.kernel_size) // strides + 1, 0)
        if self.pool_size is not None:
            size = max((size - self.pool_size) // self.pool_strides + 1, 0)
        return size

    def layer_padding(self, index: int) -> str | int:
        """The padding of the stage's `index`-th convolution (0-based): `"same"` or pixels."""
        if self.padding == ALTERNATE:
            return 1 if index % 2 == 0 else 0
        return self.padding


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A model of the paper: convolution stages, a spatial pyramid pooling, fc layers.

    Attributes:
        name: registry name, e.g. `"model_a"`.
        stages: the convolution stages in order; stage `s` (1-based) names its layers
            `conv{s}` (one layer) or `conv{s}_{i}`.
        spp_levels: bins per side of each pyramid level.
        fc_units: widths of the hidden fully connected layers (`fc1`, `fc2`); the classifier
            (`fc3`) has `classes` outputs.
        reference: where in the paper it comes from.
        paper_multiply_adds: the paper's complexity figure at 224x224 (conv + fc, Table 3), if
            it gives one.
        counted_params: our own count of the built model's parameters (1000 classes, PReLU
            slopes included), pinned so that a change to the builder shows. Not from the paper,
            which lists no parameter counts.
        input_std: the mean-subtracted pixels are divided by it in the graph. 1 (the paper's
            models): raw 0..255 minus the mean, which the paper's fixed fc stds are tuned for.
            Nets trained with MSRA-initialized fc layers need inputs of about unit scale.
    """

    name: str
    stages: tuple[ConvStage, ...]
    spp_levels: tuple[int, ...]
    fc_units: tuple[int, ...]
    reference: str
    paper_multiply_adds: float | None = None
    counted_params: float | None = None
    input_std: float = 1.0

    @property
    def depth(self) -> int:
        """Weight layers: convolutions plus fully connected layers (the paper's count)."""
        return sum(stage.num_layers for stage in self.stages) + len(self.fc_units) + 1

    def feature_map_size(self, input_size: int) -> int:
        """Side of the last convolution map for a square `input_size` input."""
        for stage in self.stages:
            input_size = stage.output_size(input_size)
        return input_size

    @property
    def min_input_size(self) -> int:
        """The smallest input side that leaves a non-empty last convolution map."""
        size = 1
        while self.feature_map_size(size) < 1:
            size += 1
        return size

    @property
    def total_stride(self) -> int:
        """Input pixels per cell of the last convolution map (16 for Models A/B/C)."""
        stride = 1
        for stage in self.stages:
            stride *= stage.strides * (stage.pool_strides or 1)
        return stride


# Table 3: 7x7/2 stem, 2x2/2 max-pools, SPP {7, 3, 2, 1} on the 14x14 map, fc 4096-4096.
def _large_model(
    name: str, num_layers: int, widths: tuple[int, int, int], counted_params: float
) -> Architecture:
    return Architecture(
        name=name,
        stages=(
            ConvStage(1, 96, 7, strides=2, padding=3, pool_size=2, pool_strides=2),
            ConvStage(num_layers, widths[0], 3, pool_size=2, pool_strides=2),
            ConvStage(num_layers, widths[1], 3, pool_size=2, pool_strides=2),
            ConvStage(num_layers, widths[2], 3),
        ),
        spp_levels=(7, 3, 2, 1),
        fc_units=(4096, 4096),
        reference="He et al. 2015, Table 3",
        paper_multiply_adds=paper.TABLE3_MULTIPLY_ADDS[name],
        counted_params=counted_params,
    )


# Table 1: 7x7/2 stem, 3x3/3 max-pool, 2x2 convs, SPP {6, 3, 2, 1}, fc 4096-4096.
def _small_model(name: str, num_stage3_layers: int, reference: str) -> Architecture:
    return Architecture(
        name=name,
        stages=(
            ConvStage(1, 64, 7, strides=2, padding=3, pool_size=3, pool_strides=3),
            ConvStage(4, 128, 2, padding=ALTERNATE, pool_size=2, pool_strides=2),
            ConvStage(num_stage3_layers, 256, 2, padding=ALTERNATE),
        ),
        spp_levels=(6, 3, 2, 1),
        fc_units=(4096, 4096),
        reference=reference,
    )


SMALL_DEPTH = 14
DEEP_DEPTH = 30

ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        _large_model("model_a", 5, (256, 512, 512), counted_params=178.0e6),
        _large_model("model_b", 6, (256, 512, 512), counted_params=183.3e6),
        _large_model("model_c", 6, (384, 768, 896), counted_params=330.6e6),
        _small_model("model_small", 6, "He et al. 2015, Table 1 (the 14-layer model)"),
        # Sec. 2.2: the 14-layer model plus 16 conv 2x2, 256 layers (27 conv + 3 fc).
        _small_model(
            "model_deep", 6 + DEEP_DEPTH - SMALL_DEPTH, "He et al. 2015, Sec. 2.2 (30-layer model)"
        ),
        # Not in the paper: every code path of the large models in a few thousand parameters.
        Architecture(
            name="model_tiny",
            stages=(
                ConvStage(1, 8, 7, strides=2, padding=3, pool_size=2, pool_strides=2),
                ConvStage(2, 16, 3, pool_size=2, pool_strides=2),
                ConvStage(2, 16, 3),
            ),
            spp_levels=(2, 1),
            fc_units=(32, 32),
            reference="test variant shaped like Table 3",
        ),
    )
}


def deep_architecture(depth: int) -> Architecture:
    """The init-study model at `depth` weight layers: the 14-layer model with extra 2x2, 256 convs.

    `depth=30` is the paper's 30-layer model; `depth=22` a 22-layer one.
    """
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < SMALL_DEPTH:
        raise ValueError(
            f"`depth` must be an integer >= {SMALL_DEPTH} (the 14-layer model plus extra 2x2, "
            f"256 conv layers). Received: depth={depth!r}"
        )
    base = ARCHITECTURES["model_deep"]
    *head, last = base.stages
    stage = dataclasses.replace(last, num_layers=last.num_layers + depth - DEEP_DEPTH)
    name = base.name if depth == DEEP_DEPTH else f"{base.name}_{depth}"
    return dataclasses.replace(base, name=name, stages=(*head, stage))


def get_architecture(architecture: str | Architecture) -> Architecture:
    """A registered architecture by name, or `architecture` itself when it is one."""
    if isinstance(architecture, str):
        check_choice("architecture", architecture, tuple(ARCHITECTURES))
        return ARCHITECTURES[architecture]
    if not isinstance(architecture, Architecture):
        raise ValueError(
            "`architecture` must be a registered name or an Architecture. "
            f"Received: architecture={architecture!r}"
        )
    return architecture
