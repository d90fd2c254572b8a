"""The training configuration, declared once (pure Python: imports neither Keras nor TensorFlow).

    from rectifier_zoo.train.config import Config
    config = Config().override(model="model_small", dataset="folder", data_dir="digits")
    payload = config.to_dict()                # config.json
    assert Config.from_dict(payload) == config

A `Config` holds the run's own settings and four sections: `network` (`ModelSpec`, what the
model builder takes), `transform` (`rectifier_zoo.data.config.TransformConfig`), `optimizer`
(`OptimizerConfig`) and `schedule` (`ScheduleConfig`). Every leaf field has a name unique across
the sections, which is at once its command-line flag (`rectifier_zoo.train.cli`), its key in the
flat view (`Config.flat`, the form config.json had before the sections) and its keyword in
`Config.override`. Each field is declared once: its type (a `Choice` enum for "one of these"),
its default (the paper's, from `rectifier_zoo.paper`), its check, and its help text, read from
the "Args:" list of its class's docstring.

Every object is checked when it is built: a bad value raises ValueError naming the field, what
it accepts and the value received. Objects are frozen; `override` returns a changed copy.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import math
import re
import typing
from collections.abc import Callable

from rectifier_zoo import paper
from rectifier_zoo.architectures import ARCHITECTURES, Architecture, ConvStage
from rectifier_zoo.checks import check_choice
from rectifier_zoo.data.config import TransformConfig

__all__ = [
    "Activation",
    "Config",
    "Dataset",
    "Freeze",
    "LrSchedule",
    "ModelName",
    "ModelSpec",
    "OptimizerConfig",
    "Precision",
    "ScheduleConfig",
    "Setting",
    "StrategyName",
    "TransformConfig",
    "architecture_from_dict",
    "settings",
]


class Choice(str, enum.Enum):
    """A string-valued choice: equal to its value (same hash), and written as it in JSON."""

    __hash__ = str.__hash__  # Enum hashes the member's name: dict lookups by value would miss

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(member.value for member in cls)


class Activation(Choice):
    PRELU = "prelu"  # Sec. 2.1
    RELU = "relu"


class LrSchedule(Choice):
    STEP = "step"  # divided at the epochs of `lr_boundaries`
    PLATEAU = "plateau"  # divided when the validation error stops improving


class Precision(Choice):
    FLOAT32 = "float32"
    MIXED_BFLOAT16 = "mixed_bfloat16"
    MIXED_FLOAT16 = "mixed_float16"  # with loss scaling


class StrategyName(Choice):
    AUTO = "auto"
    ONE_DEVICE = "one_device"
    MIRRORED = "mirrored"
    MULTI_WORKER = "multi_worker"
    TPU = "tpu"


class Dataset(Choice):
    SYNTHETIC = "synthetic"
    FOLDER = "folder"
    TFRECORD = "tfrecord"
    IMAGENET2012 = "imagenet2012"


class Freeze(Choice):
    NONE = "none"  # every layer trains
    TRUNK = "trunk"  # only the top (SPP's fc layers and the classifier) trains


# The registered models: the architectures of Sec. 2.3 / Table 3, the Table 1 model, ...
ModelName = Choice("ModelName", {name.upper(): name for name in ARCHITECTURES}, module=__name__)


# --- checks: each takes the field's name and value, raises ValueError naming both ------------


def _integer(minimum: int = 1, optional: bool = False) -> Callable:
    def check(name, value):
        if value is None and optional:
            return
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            if optional:
                expected = f">= {minimum} or None"
            elif minimum == 1:
                expected = "a positive integer"
            else:
                expected = f"an integer >= {minimum}"
            raise ValueError(f"{name} must be {expected}. Received: {name}={value!r}")

    return check


def _text(optional: bool = False) -> Callable:
    def check(name, value):
        if value is None and optional:
            return
        if not isinstance(value, str) or not value.strip():
            expected = "a non-empty string" + (" or None" if optional else "")
            raise ValueError(f"{name} must be {expected}. Received: {name}={value!r}")

    return check


def _number(low=None, high=None, low_inclusive: bool = True, optional: bool = False) -> Callable:
    """A finite real number in [low, high) (or (low, high) without `low_inclusive`).

    Finite only: inf and nan pass `x > 0`-style checks and fail many steps later.
    """
    bounds = (
        f"{'[' if low_inclusive else '('}{'-inf' if low is None else low}, "
        f"{'inf' if high is None else high})"
    )

    def check(name, value, shown=None):
        if value is None and optional:
            return
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
        if ok and low is not None:
            ok = value >= low if low_inclusive else value > low
        if not ok or (high is not None and value >= high):
            shown = value if shown is None else shown
            raise ValueError(
                f"{name} must be a finite number in {bounds}{' or None' if optional else ''}. "
                f"Received: {name}={shown!r}"
            )

    return check


def _numbers(low=None) -> Callable:
    each = _number(low=low)

    def check(name, values):
        if not isinstance(values, tuple):
            raise ValueError(f"{name} must be a list of numbers. Received: {name}={values!r}")
        for value in values:
            each(name, value, shown=values)

    return check


def _setting(default=None, check: Callable | None = None, factory=None):
    """A field with its default (or `factory`) and its check."""
    metadata = {"check": check} if check else {}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# --- the typed, checked sections -----------------------------------------------------------


def _choice_of(hint) -> type[Choice] | None:
    """The `Choice` enum of a field's type (`Activation`, `ModelName | Architecture`)."""
    options = typing.get_args(hint) or (hint,)
    return next((o for o in options if isinstance(o, type) and issubclass(o, Choice)), None)


def _coerce(name: str, value, hint):
    """JSON and flag values in their field's type: enum members, tuples, floats, architectures."""
    options = typing.get_args(hint) or (hint,)
    if Architecture in options and isinstance(value, dict):
        return architecture_from_dict(value)
    if Architecture in options and isinstance(value, Architecture):
        return value
    choice = _choice_of(hint)
    if choice is not None:
        check_choice(name, value, choice.values())
        return choice(value)
    if typing.get_origin(hint) is tuple and isinstance(value, list):
        return tuple(value)
    if float in options and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@functools.cache
def _hints(cls: type) -> dict:
    return typing.get_type_hints(cls)


class _Checked:
    """Coerces each field to its type, then runs its check and the class's `_check`."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for field in dataclasses.fields(self):
            value = _coerce(field.name, getattr(self, field.name), hints[field.name])
            check = field.metadata.get("check")
            if check is not None:
                check(field.name, value)
            if isinstance(value, tuple) and typing.get_args(hints[field.name])[:1] == (float,):
                value = tuple(float(v) for v in value)
            object.__setattr__(self, field.name, value)
        self._check()

    def _check(self) -> None:
        """Checks across fields (none by default)."""


@dataclasses.dataclass(frozen=True)
class ModelSpec(_Checked):
    """The network: what `models.get_model` / `models.build_model` are given.

    Args:
        model: a registered model (rectifier_zoo.list_models()) or, in Python, an Architecture
            to build instead (the quickstart's own net).
        activation: the rectifier: prelu (Sec. 2.1) or relu.
        channel_shared: one PReLU slope per layer instead of one per channel (Sec. 2.1).
        kernel_initializer: conv initializer: msra_fan_out (Sec. 2.2, used for Models A/B/C),
            msra_fan_in, xavier, or a Keras initializer name.
        fc_initializer: fc initializer by name; unset or paper: the paper's fixed stds (Sec.
            2.2), which suit only its raw (mean-subtracted 0..255) inputs.
        input_std: the divisor after the per-channel mean subtraction, built into the model
            and its exports; unset: the model's own (1 for the registered models: the paper's
            raw inputs). The input scale belongs to the recipe, as its fc init does: the
            quickstart's 58 (unit scale) with MSRA fc layers trains any registered model on
            real images at lr 1e-2, where the paper's raw inputs with its fixed fc stds diverge
            on small crops (see recipes.QUICKSTART_INPUT_STD). Fine-tuning needs the scale the
            weights were trained at.
        dropout: dropout rate after fc1 and fc2 (Sec. 2.3).
    """

    model: ModelName | Architecture = ModelName("model_a")
    activation: Activation = Activation.PRELU
    channel_shared: bool = False
    kernel_initializer: str = "msra_fan_out"
    fc_initializer: str | None = None
    input_std: float | None = _setting(None, _number(0.0, low_inclusive=False, optional=True))
    dropout: float = _setting(paper.DROPOUT, _number(0.0, 1.0))

    def _check(self) -> None:
        if isinstance(self.model, Architecture):
            _number(low=0.0, low_inclusive=False)("architecture.input_std", self.model.input_std)

    @property
    def model_name(self) -> str:
        """The registered name, or the architecture's own name."""
        return self.model.name if isinstance(self.model, Architecture) else self.model.value

    def architecture(self) -> Architecture:
        """The architecture built: `model` (looked up when registered) with `input_std` applied."""
        architecture = (
            self.model if isinstance(self.model, Architecture) else ARCHITECTURES[self.model.value]
        )
        if self.input_std is None:
            return architecture
        return dataclasses.replace(architecture, input_std=self.input_std)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig(_Checked):
    """The paper's SGD (Sec. 2.3): momentum and coupled L2 weight decay on kernels only.

    Args:
        learning_rate: initial learning rate (Sec. 2.3).
        momentum: SGD momentum (Sec. 2.3).
        weight_decay: L2 coefficient on conv and fc kernels, added to their gradients (Sec. 2.3);
            PReLU slopes and biases are never decayed (Sec. 2.1).
    """

    learning_rate: float = _setting(paper.LEARNING_RATES[0], _number(0.0, low_inclusive=False))
    momentum: float = _setting(paper.MOMENTUM, _number(0.0, 1.0))
    weight_decay: float = _setting(paper.WEIGHT_DECAY, _number(0.0))


@dataclasses.dataclass(frozen=True)
class ScheduleConfig(_Checked):
    """How long to train and how the learning rate falls (Sec. 2.3).

    Args:
        epochs: training length in passes over the training split (unused with train_steps).
        train_steps: training length in steps (overrides epochs).
        steps_per_epoch: steps per epoch; unset: training images // batch_size.
        lr_schedule: step (divide the rate by 10 at each epoch of lr_boundaries) or plateau
            (divide it when the validation top-1 error stops improving, Sec. 2.3).
        lr_boundaries: epochs at which the learning rate is divided by 10 (step schedule).
        warmup_epochs: linear warm-up from 0 to learning_rate over this many epochs.
        plateau_patience: evaluations without improvement before a drop (plateau schedule).
        max_lr_drops: most drops of the plateau schedule.
    """

    epochs: float = float(paper.EPOCHS)
    train_steps: int | None = _setting(None, _integer(optional=True))
    steps_per_epoch: int | None = _setting(None, _integer(optional=True))
    lr_schedule: LrSchedule = LrSchedule.STEP
    lr_boundaries: tuple[float, ...] = _setting(
        tuple(float(epoch) for epoch in paper.LR_SWITCH_EPOCHS), _numbers(low=0.0)
    )
    warmup_epochs: float = _setting(0.0, _number(0.0))
    plateau_patience: int = _setting(2, _integer(1))
    # 1e-2 -> 1e-3 -> 1e-4: as many drops as the paper's rates after the first.
    max_lr_drops: int = _setting(len(paper.LEARNING_RATES) - 1, _integer(0))

    def _check(self) -> None:
        if self.train_steps is None:
            _number(0.0, low_inclusive=False)("epochs", self.epochs)


@dataclasses.dataclass(frozen=True)
class Config(_Checked):
    """One training run; written, with its class list and history, as `config.json`.

    The defaults are the paper's recipe (Sec. 2.3) for Model A on ImageNet.

    Args:
        name: run name; the export goes to exported_models/<name>/<version>/ by default.
        dataset: the data source (see rectifier_zoo.data.get_source).
        data_dir: where the data set lives (folder / tfrecord / tfds data dir).
        model_dir: checkpoints, TensorBoard logs, config.json and summary.json.
        export_dir: base folder of the SavedModel versions (TF Serving's model base path); each
            run exports into <export_dir>/<next integer version>/. Unset:
            exported_models/<name>.
        strategy: the tf.distribute strategy (rectifier_zoo.train.distribute.get_strategy).
        batch_size: the GLOBAL batch size, split over the replicas (Sec. 2.3).
        precision: float32, mixed_bfloat16, or mixed_float16 (with loss scaling).
        xla: compile the train step with XLA.
        seed: makes initialization, data order and augmentation repeatable; unset: random.
        checkpoint_every_steps: save a checkpoint every this many steps (and at each epoch end).
        keep_checkpoints: checkpoints kept.
        eval_every_epochs: validate every this many epochs (and at the end); 0: only at the end.
        log_every_steps: progress bar, TensorBoard and log-line interval.
        verbose: 1 shows a progress bar, 0 prints one line per log_every_steps instead.
        private_threadpool_size: threads of the input pipeline's own pool; unset: shared.
        init_weights: fine-tuning: a fresh run starts from these weights, a .weights.h5 file or a
            tag of the weights manifest (imagenet) for the registered model, loaded layer by
            layer by name (rectifier_zoo.load_weights); a classifier with another class count
            than the file's is drawn anew from its initializer. Resuming from a checkpoint, the
            checkpoint wins and the file is not read (the value must stay as stored).
        freeze: none trains every layer; trunk trains only the top (SPP's fc layers and the
            classifier): the convolutions and their PReLU slopes keep their values. Fixed on
            resume.
        network: the model (ModelSpec).
        transform: the input transform (rectifier_zoo.data.config.TransformConfig).
        optimizer: the SGD settings (OptimizerConfig).
        schedule: training length and learning-rate schedule (ScheduleConfig).
    """

    name: str = "run"
    dataset: Dataset = Dataset.IMAGENET2012
    data_dir: str | None = None
    model_dir: str = "runs/run"
    export_dir: str | None = None
    strategy: StrategyName = StrategyName.AUTO
    batch_size: int = _setting(paper.BATCH_SIZE, _integer())
    precision: Precision = Precision.FLOAT32
    xla: bool = False
    seed: int | None = None
    checkpoint_every_steps: int = _setting(2000, _integer())
    keep_checkpoints: int = _setting(3, _integer())
    eval_every_epochs: int = _setting(1, _integer(0))
    log_every_steps: int = _setting(50, _integer())
    verbose: int = 1
    private_threadpool_size: int | None = None
    init_weights: str | None = _setting(None, _text(optional=True))
    freeze: Freeze = Freeze.NONE
    network: ModelSpec = _setting(factory=ModelSpec)
    transform: TransformConfig = _setting(factory=TransformConfig)
    optimizer: OptimizerConfig = _setting(factory=OptimizerConfig)
    schedule: ScheduleConfig = _setting(factory=ScheduleConfig)

    def _check(self) -> None:
        for name, section in _SECTIONS.items():
            if not isinstance(getattr(self, name), section):
                raise ValueError(
                    f"{name} must be a {section.__name__}. Received: {name}={getattr(self, name)!r}"
                )

    def override(self, **values) -> Config:
        """A copy with the fields named by their flat names changed (checked as at creation).

        `model` takes a registered name or an `Architecture`.
        """
        for name in values:
            check_choice("field", name, FIELD_NAMES)
        by_section: dict = {}
        for name, value in values.items():
            by_section.setdefault(_OWNERS[name], {})[name] = value
        own = by_section.pop(None, {})
        sections = {
            name: dataclasses.replace(getattr(self, name), **changes)
            for name, changes in by_section.items()
        }
        return dataclasses.replace(self, **own, **sections)

    def to_dict(self) -> dict:
        """JSON-ready nested dict: the run's fields, one dict per section."""
        return _jsonable(self)

    @classmethod
    def from_dict(cls, payload: dict) -> Config:
        """The inverse of `to_dict`; keys it does not know (class names, history) are skipped."""
        own = {k: v for k, v in payload.items() if k in _OWNERS and _OWNERS[k] is None}
        sections = {
            name: _section_from_dict(section, payload[name])
            for name, section in _SECTIONS.items()
            if isinstance(payload.get(name), dict)
        }
        return cls(**own, **sections)

    def flat(self) -> dict:
        """JSON-ready flat dict: every leaf field by name, `model` as a name plus `architecture`.

        The form of config.json before the sections (and of the resume comparison).
        """
        result = {name: _jsonable(self.get(name)) for name in _OWNERS}
        model = self.network.model
        result["model"] = self.network.model_name
        result["architecture"] = _jsonable(model) if isinstance(model, Architecture) else None
        return result

    @classmethod
    def from_flat(cls, payload: dict) -> Config:
        """A config from the flat form (`flat`, the old config.json); missing fields: defaults."""
        values = {k: v for k, v in payload.items() if k in _OWNERS}
        if payload.get("architecture"):
            values["model"] = payload["architecture"]
        return cls().override(**values)

    @classmethod
    def from_stored(cls, payload: dict) -> Config:
        """A config from a stored config.json, nested (`to_dict`) or flat (older runs)."""
        return cls.from_dict(payload) if is_nested(payload) else cls.from_flat(payload)

    def get(self, name: str):
        """A leaf field by its flat name."""
        check_choice("field", name, FIELD_NAMES)
        owner = _OWNERS[name]
        return getattr(self if owner is None else getattr(self, owner), name)


def is_nested(payload: dict) -> bool:
    """Whether a stored config dict has the sections (`to_dict`) rather than the flat form."""
    return any(isinstance(payload.get(name), dict) for name in _SECTIONS)


def flatten(payload: dict) -> dict:
    """The flat form (`Config.flat`) of a stored config dict, nested or already flat.

    Done on the dict alone, so that a stored file is compared as it is, even one that would not
    pass today's checks. Keys that are not fields (class names, history) are kept.
    """
    if not is_nested(payload):
        return dict(payload)
    flat = {k: v for k, v in payload.items() if k not in _SECTIONS}
    for name in _SECTIONS:
        flat.update(payload.get(name) or {})
    model = flat.get("model")
    flat["architecture"] = model if isinstance(model, dict) else None
    if isinstance(model, dict):
        flat["model"] = model.get("name")
    return flat


def architecture_from_dict(payload: dict) -> Architecture:
    """An `Architecture` from its JSON form (`dataclasses.asdict` with lists)."""
    return Architecture(
        **{
            **payload,
            "stages": tuple(ConvStage(**stage) for stage in payload["stages"]),
            "spp_levels": tuple(payload["spp_levels"]),
            "fc_units": tuple(payload["fc_units"]),
        }
    )


def _jsonable(value):
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def _section_from_dict(section: type, payload: dict):
    names = {f.name for f in dataclasses.fields(section)}
    values = {k: v for k, v in payload.items() if k in names}
    hints = _hints(section)
    # Sections that do not coerce themselves (TransformConfig) get tuples back from JSON lists.
    for name, value in values.items():
        if typing.get_origin(hints[name]) is tuple and isinstance(value, list):
            values[name] = tuple(value)
    return section(**values)


# --- the leaf fields, each with one flat name --------------------------------------------------

_SECTIONS: dict[str, type] = {
    "network": ModelSpec,
    "transform": TransformConfig,
    "optimizer": OptimizerConfig,
    "schedule": ScheduleConfig,
}


def _field_help(cls: type) -> dict[str, str]:
    """The entries of the "Args:" list of a class's docstring, by name."""
    helps: dict[str, str] = {}
    current = None
    in_args = False
    for line in (inspect.getdoc(cls) or "").splitlines():
        if line.strip() in ("Args:", "Attributes:"):
            in_args = True
            continue
        if not in_args or not line.strip():
            continue
        if not line.startswith(" "):  # the next docstring section
            in_args, current = False, None
            continue
        match = re.match(r"^    (\w+): (.*)$", line)
        if match:
            current = match[1]
            helps[current] = match[2].strip()
        elif current is not None:
            helps[current] += " " + line.strip()
    return helps


class Setting(typing.NamedTuple):
    """A leaf field: its flat name, its section (None: the run's own), type, default, help."""

    name: str
    section: str | None
    hint: object
    default: object
    help: str

    @property
    def choices(self) -> type[Choice] | None:
        return _choice_of(self.hint)


def settings() -> list[Setting]:
    """Every leaf field of `Config`, in declaration order; the names are unique."""
    result = []
    for owner, cls in ((None, Config), *_SECTIONS.items()):
        hints = _hints(cls)
        helps = _field_help(cls)
        defaults = cls()
        for field in dataclasses.fields(cls):
            if owner is None and field.name in _SECTIONS:
                continue
            result.append(
                Setting(
                    field.name,
                    owner,
                    hints[field.name],
                    getattr(defaults, field.name),
                    helps.get(field.name, ""),
                )
            )
    return result


def _owners() -> dict[str, str | None]:
    owners: dict[str, str | None] = {}
    for owner, cls in ((None, Config), *_SECTIONS.items()):
        for field in dataclasses.fields(cls):
            if owner is None and field.name in _SECTIONS:
                continue
            if field.name in owners:
                raise RuntimeError(
                    f"Config field names must be unique across sections (each is a flag): "
                    f"{field.name!r} is in {owners[field.name] or 'Config'} and "
                    f"{owner or 'Config'}"
                )
            owners[field.name] = owner
    return owners


# flat name -> the section that holds it (None: Config itself)
_OWNERS: dict[str, str | None] = _owners()
FIELD_NAMES: tuple[str, ...] = tuple(_OWNERS)
