"""Sizes of the studies (`quick`, full, and the tests' smoke setting); pure Python, no TensorFlow.

The studies keep the paper's depths, layer types and SPP but shrink the widths, the inputs and
the number of steps, so that they run on CPUs in minutes. Every run writes its settings into
its `summary.json`.
"""

from __future__ import annotations

import dataclasses

from rectifier_zoo import paper
from rectifier_zoo.architectures import Architecture


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """Sizes of one run of the studies (`quick` or full).

    Args:
        image_size: input side in pixels of the PReLU study (paper: 224).
        init_image_size: input side of the init study's training (96: the last stage's map
            is 8x8; see `stats_image_size`).
        width: factor on every conv and fc width of the PReLU study's models (paper: 1).
        init_width: factor on every conv and fc width of the init study's trained models
            (Model B for Fig. 2, the 30-layer model for Fig. 3).
        stats_width: factor on the widths of the models measured at initialization.
        stats_image_size: input side of the statistics at initialization (paper: 224).
        stats_batch: images in the batch of the initialization statistics.
        init_depths: depths of the init study: 22 is Fig. 2's Model B, any other depth the
            init-study family (`deep_architecture`; 30 is Fig. 3's model).
        init_steps: training steps of every run at each of `init_depths` (same order).
        init_learning_rates: learning rate of every run at each of `init_depths` (same order;
            the same for every init).
        prelu_steps: training steps per PReLU-study run.
        prelu_learning_rate: learning rate of the PReLU study.
        prelu_dropout: dropout after fc1 and fc2 in the PReLU study (paper: 0.5).
        slopes_steps: training steps per run of the slopes study (the PReLU study's models,
            data and learning rate, trained longer).
        slopes_seeds: seeds of the slopes study's runs.
        seeds: seeds of the init and PReLU studies' training runs.
        batch_size: training batch size (paper: 128).
        weight_decay: L2 on conv and fc kernels (paper: 5e-4; not on slopes or biases).
        init_difficulty: synthetic-set difficulty of the init study.
        prelu_difficulty: synthetic-set difficulty of the PReLU study (hard enough that the
            models do not all reach 0% error).
        train_images: training images of the PReLU study's synthetic set.
        init_train_images: training images of the init study's synthetic set (an epoch of
            its error curves is one pass over them).
        val_images: validation images of the synthetic sets.
    """

    image_size: int = 64
    init_image_size: int = 96
    width: float = 0.25
    # Model B at x0.25 and 96 px took ~1.8 s a step on 2 shared cores, at x0.125 ~0.55.
    init_width: float = 0.125
    stats_width: float = 1.0
    stats_image_size: int = 224
    stats_batch: int = 8
    init_depths: tuple[int, ...] = (30, 22)
    # The 30-layer model (Fig. 3) at lr 0.005: at 0.01 the plain 30-layer and 14-layer nets
    # died back to ln(classes) or diverged in our trials, at 0.02 the MSRA nets stalled at
    # ln(classes); at 0.005 they leave it after 100-250 steps and converge in 300.
    # Model B (Fig. 2) at lr 0.0025, the paper's 0.01 at batch 128 scaled linearly to batch 32:
    # at 0.005 Xavier left ln(classes) in 2 of 3 seeds and then fell back to chance (one large
    # update at the escape killed a quarter of the last stage's channels and half the fc
    # units); at 0.0025 seeds 1 and 2 left ln(classes) after 700 and 1500 steps and converged
    # by 2000 (1000 steps were too few).
    init_steps: tuple[int, ...] = (300, 2000)
    init_learning_rates: tuple[float, ...] = (0.005, 0.0025)
    prelu_steps: int = 900
    prelu_learning_rate: float = 0.005
    # No dropout: in a few hundred steps the nets underfit; with dropout 0.5 the ReLU net was
    # still at ln(classes) after 600 steps.
    prelu_dropout: float = 0.0
    slopes_steps: int = 4000
    slopes_seeds: tuple[int, ...] = (0, 1, 2)
    seeds: tuple[int, ...] = (0, 1, 2)
    batch_size: int = 32
    weight_decay: float = paper.WEIGHT_DECAY
    init_difficulty: float = 0.0
    prelu_difficulty: float = 0.5
    train_images: int = 2000
    # 1000: an epoch (a point of the error curves) every 31 steps of 32.
    init_train_images: int = 1000
    val_images: int = 500

    def __post_init__(self):
        for name in ("init_steps", "init_learning_rates"):
            if len(getattr(self, name)) != len(self.init_depths):
                raise ValueError(
                    f"`{name}` needs one value per depth of `init_depths`. Received: "
                    f"{name}={getattr(self, name)!r}, init_depths={self.init_depths!r}"
                )

    def init_steps_at(self, depth: int) -> int:
        """Training steps of the init study's runs at `depth`."""
        return self.init_steps[self.init_depths.index(depth)]

    def init_learning_rate_at(self, depth: int) -> float:
        """Learning rate of the init study's runs at `depth`."""
        return self.init_learning_rates[self.init_depths.index(depth)]

    @classmethod
    def from_dict(cls, fields: dict) -> StudySettings:
        """The settings a `summary.json` recorded (its lists back to tuples).

        Summaries written before the learning rate was given per depth record one
        `init_learning_rate` for every depth.
        """
        fields = dict(fields)
        if "init_learning_rate" in fields:
            rate = fields.pop("init_learning_rate")
            fields["init_learning_rates"] = [rate] * len(fields["init_depths"])
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


QUICK_SETTINGS = StudySettings()
# Every study's committed results were run at these sizes (prelu 4119 s; init and slopes in
# pieces, resumed from their runs/ folders; the README gives the times).
FULL_SETTINGS = StudySettings(
    # 30 layers: at lr 0.0025 the MSRA nets sit at ln(classes) for 100-900 steps before they
    # leave it; in 1000 steps fan-in seeds 2 and 3 had only begun (final 2.277, 2.172; the
    # other six MSRA runs of seeds 0-3 0.79-1.55, Xavier 2.302-2.303 in all four).
    init_steps=(2000, 4000),
    # The paper's 0.01 at batch 128, scaled to batch 32, at both depths. The quick 30-layer
    # runs' 0.005 was on the edge at this size: MSRA fan-out seed 0 left ln(classes) near step
    # 75 and fell back to it for good (final 2.297); at 0.0025 it converged (0.875, fan-in
    # 0.813) and Xavier still stalled (2.302).
    init_learning_rates=(0.0025, 0.0025),
    prelu_steps=4000,
    slopes_steps=16000,
    slopes_seeds=(0, 1, 2, 3, 4),
    seeds=(0, 1, 2, 3, 4),
    train_images=6000,
    init_train_images=6000,
    val_images=1000,
)
# For the unit tests: every code path in seconds.
SMOKE_SETTINGS = StudySettings(
    image_size=40,
    init_image_size=40,
    width=0.0625,
    stats_width=0.0625,
    stats_image_size=40,
    stats_batch=4,
    init_width=0.0625,
    init_depths=(22,),
    init_steps=(6,),
    init_learning_rates=(0.005,),
    prelu_steps=2,
    slopes_steps=3,
    slopes_seeds=(0,),
    seeds=(0,),
    batch_size=4,
    train_images=20,
    init_train_images=20,
    val_images=10,
)


def settings_for(quick: bool, settings: StudySettings | None = None) -> StudySettings:
    """`settings` when given, else the `quick` or the full sizes."""
    return settings or (QUICK_SETTINGS if quick else FULL_SETTINGS)


def with_overrides(
    settings: StudySettings,
    weight_decay: float | None = None,
    init_depths: tuple[int, ...] | None = None,
    init_learning_rate: float | None = None,
) -> StudySettings:
    """`settings` with the command line's overrides (`None`: keep the field).

    Args:
        weight_decay: replaces `weight_decay` (>= 0): an ablation of the paper's decay.
        init_depths: a subset of `settings.init_depths` (each depth keeps its steps and
            learning rate), so that one figure of the init study can be run alone.
        init_learning_rate: replaces the init study's learning rate (> 0) at every depth it
            runs (after `init_depths`): an ablation of the paper's rate scaled to the batch.
    """
    if weight_decay is not None:
        if not weight_decay >= 0:
            raise ValueError(f"`weight_decay` must be >= 0. Received: weight_decay={weight_decay}")
        settings = dataclasses.replace(settings, weight_decay=weight_decay)
    if init_depths is not None:
        unknown = [depth for depth in init_depths if depth not in settings.init_depths]
        if unknown or not init_depths:
            raise ValueError(
                f"`init_depths` must be a non-empty subset of {settings.init_depths}. "
                f"Received: init_depths={tuple(init_depths)}"
            )
        settings = dataclasses.replace(
            settings,
            init_depths=tuple(init_depths),
            init_steps=tuple(settings.init_steps_at(depth) for depth in init_depths),
            init_learning_rates=tuple(
                settings.init_learning_rate_at(depth) for depth in init_depths
            ),
        )
    if init_learning_rate is not None:
        if not init_learning_rate > 0:
            raise ValueError(
                f"`init_learning_rate` must be > 0. Received: init_learning_rate="
                f"{init_learning_rate}"
            )
        settings = dataclasses.replace(
            settings, init_learning_rates=(init_learning_rate,) * len(settings.init_depths)
        )
    return settings


def override_flags(settings: StudySettings, quick: bool) -> list[str] | None:
    """The command line's override flags that make `settings` from the `quick` or full sizes.

    Returns:
        The flags, in `with_overrides`' order (`[]`: the sizes as they are), or `None` where no
        flags make them (sizes given in code, such as the tests' `SMOKE_SETTINGS`).
    """
    base = settings_for(quick)
    depths = None if settings.init_depths == base.init_depths else settings.init_depths
    decay = None if settings.weight_decay == base.weight_decay else settings.weight_decay
    try:
        made = with_overrides(base, decay, depths)
        rate = None
        if made.init_learning_rates != settings.init_learning_rates and (
            len(set(settings.init_learning_rates)) == 1
        ):
            rate = settings.init_learning_rates[0]
            made = with_overrides(made, init_learning_rate=rate)
    except ValueError:  # depths the sizes do not have, a negative decay or rate
        return None
    if made != settings:
        return None
    flags = []
    if depths is not None:
        flags.append("--init_depths " + ",".join(str(depth) for depth in depths))
    if decay is not None:
        flags.append(f"--weight_decay {decay:g}")
    if rate is not None:
        flags.append(f"--init_learning_rate {rate:g}")
    return flags


def scaled_architecture(architecture: Architecture, width: float) -> Architecture:
    """`architecture` with every conv and fc width multiplied by `width` (depth unchanged)."""
    if width == 1:
        return architecture
    stages = tuple(
        dataclasses.replace(stage, filters=max(1, round(stage.filters * width)))
        for stage in architecture.stages
    )
    fc_units = tuple(max(1, round(units * width)) for units in architecture.fc_units)
    return dataclasses.replace(
        architecture, name=f"{architecture.name}_w{width:g}", stages=stages, fc_units=fc_units
    )
