"""Pretrained weights: a manifest of `(model, tag)` entries with their cards, resolution of
`weights=`, download with sha256 verification into the Keras cache, and loading by layer name.

Entries come from, in order of precedence (later wins):
1. `weights_manifest.json`, shipped in the package;
2. the manifest files or URLs named by the `RECTIFIER_ZOO_WEIGHTS_MANIFEST` environment
   variable (several separated by `os.pathsep`);
3. `register_weights(...)` calls in this process.

A manifest is JSON: `{"weights": [{"model": "model_a", "tag": "imagenet", "url": "...",
"sha256": "...", "classes": 1000, "include_top": true, "notes": "...", "dataset":
"imagenet2012", "recipe": "paper_model_a", "license": "...", "input_size": 256, "crop_size": 224,
"mean": [123.68, 116.779, 103.939], "input_std": 1.0, "results": {"ten_view": {"top1_error":
..., "top5_error": ...}}}]}`: the fields of `WeightsEntry`, every one type-checked. `url` may be
`https://`, `http://`, `file://` or a local path (relative paths are relative to the manifest).

`load_weights(model, weights)` loads a file into any model the builders make, matching layers
by name: a trunk-only model takes the trunk of a full file, a classifier with another class
count starts from its initializer (fine-tuning), a first convolution with 1 or more than 3
input channels is adapted from RGB kernels, and anything else that differs (another
architecture, PReLU against ReLU, channel-shared slopes) is one `ValueError` naming the file and
the layers.
"""

import dataclasses
import json
import logging
import math
import os
import re
import urllib.parse
import urllib.request

import keras
import numpy as np

from rectifier_zoo import paper
from rectifier_zoo.checks import check_choice

ENV_MANIFEST = "RECTIFIER_ZOO_WEIGHTS_MANIFEST"
CACHE_SUBDIR = "rectifier_zoo"
_PACKAGED_MANIFEST = os.path.join(os.path.dirname(__file__), "weights_manifest.json")
logger = logging.getLogger("rectifier_zoo")

# A card reports results under the test protocols of Sec. 2.3 "Testing", named as the
# evaluator names them (rectifier_zoo.serving.protocols): 224 centre crop, 10 views, dense
# multi-scale; each as top-1 and top-5 error in percent, as in the paper's tables.
RESULT_PROTOCOLS = ("center", "ten_view", "dense")
RESULT_METRICS = ("top1_error", "top5_error")
# The training recipe of each model (python training/train.py --recipe=...).
RECIPES = {
    "model_a": "paper_model_a",
    "model_b": "paper_model_b",
    "model_c": "paper_model_c",
    "model_small": "paper_small",
    "model_deep": "init_study",
}


@dataclasses.dataclass(frozen=True)
class WeightsEntry:
    """One published weights file for a model, with its card.

    Attributes:
        model: the model it is for (a `rectifier_zoo.list_models()` name or an architecture's
            name).
        tag: what `weights=` names it by, e.g. `"imagenet"`.
        url: `https://`, `http://`, `file://` or a local path.
        sha256: 64 lowercase hex digits of the file.
        classes: classes of its top.
        include_top: whether it holds the top (SPP's fc layers).
        notes: free text.
        dataset: the data set it was trained on, e.g. `"imagenet2012"`.
        recipe: the training recipe, e.g. `"paper_model_a"` (`training/train.py --recipe=`).
        license: the license of the weights.
        input_size: shorter side of the test images (Sec. 2.3 "Testing": 256).
        crop_size: side of the test crop (224).
        mean: the RGB mean subtracted on 0..255 in training.
        input_std: the divisor after the mean subtraction (1 for the paper's models).
        results: `{protocol: {"top1_error": %, "top5_error": %}}` on the validation set, for
            protocols among `RESULT_PROTOCOLS`.
    """

    model: str
    tag: str
    url: str
    sha256: str
    classes: int = 1000
    include_top: bool = True
    notes: str = ""
    dataset: str | None = None
    recipe: str | None = None
    license: str | None = None
    input_size: int = paper.TEST_RESIZE
    crop_size: int = paper.CROP_SIZE
    mean: tuple[float, ...] = paper.IMAGENET_MEAN_RGB
    input_std: float = 1.0
    results: dict = dataclasses.field(default_factory=dict, hash=False)

    @property
    def card(self) -> dict:
        """The entry's card: what it is, how it was trained, its input contract and results."""
        return {
            "model": self.model,
            "tag": self.tag,
            "classes": self.classes,
            "include_top": self.include_top,
            "dataset": self.dataset,
            "recipe": self.recipe,
            "input": {
                "size": self.input_size,
                "crop": self.crop_size,
                "mean": list(self.mean),
                "std": self.input_std,
            },
            "results": {protocol: dict(values) for protocol, values in self.results.items()},
            "license": self.license,
            "sha256": self.sha256,
            "url": self.url,
            "notes": self.notes,
        }


@dataclasses.dataclass(frozen=True)
class WeightsFile:
    """A verified local weights file and what it holds (`entry`: the manifest entry, if any)."""

    path: str
    classes: int | None
    include_top: bool
    entry: WeightsEntry | None = None

    def describe(self) -> str:
        if self.entry is None:
            return f"The weights file {self.path!r}"
        return (
            f"The weights file {self.path!r} (the {self.entry.tag!r} weights of "
            f"{self.entry.model} from {self.entry.url})"
        )


@dataclasses.dataclass(frozen=True)
class LoadedWeights:
    """What `load_weights` did, layer by layer (layer names).

    Attributes:
        path: the local file.
        loaded: layers set to the file's values.
        reinitialized: the classifier, when the file has another class count; drawn anew from
            its initializer.
        adapted: the first convolution, when the model has another input channel count.
        skipped: layers of the file the model does not have (the top of a trunk-only model,
            the deeper stages of a feature model).
    """

    path: str
    loaded: tuple[str, ...]
    reinitialized: tuple[str, ...]
    adapted: tuple[str, ...]
    skipped: tuple[str, ...]


_registered: dict[tuple[str, str], WeightsEntry] = {}


def register_weights(
    model: str,
    tag: str,
    url: str,
    sha256: str,
    classes: int = 1000,
    include_top: bool = True,
    notes: str = "",
    **card,
) -> WeightsEntry:
    """Makes `weights=tag` resolve to `url` for `model` in this process.

    Example, after training and exporting weights with `model.save_weights("a.weights.h5")`:
    `register_weights("model_a", "imagenet", "/data/a.weights.h5", sha256=<sha256sum of it>,
    dataset="imagenet2012", recipe="paper_model_a", license="CC-BY-4.0",
    results={"ten_view": {"top1_error": 24.0, "top5_error": 7.4}})`.

    Args:
        model, tag, url, sha256, classes, include_top, notes: as in `WeightsEntry`.
        **card: the card fields of `WeightsEntry` (`dataset`, `recipe`, `license`,
            `input_size`, `crop_size`, `mean`, `input_std`, `results`).

    Raises:
        ValueError: a field of the wrong type or value.
    """
    raw = {
        "model": model,
        "tag": tag,
        "url": url,
        "sha256": sha256,
        "classes": classes,
        "include_top": include_top,
        "notes": notes,
        **card,
    }
    entry = _entry(raw, origin="register_weights")
    _registered[(entry.model, entry.tag)] = entry
    return entry


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _require(ok: bool, field: str, what: str, value) -> None:
    if not ok:
        raise ValueError(f"`{field}` must be {what}. Received: {field}={value!r}")


def _checked(entry: WeightsEntry) -> WeightsEntry:
    """`entry` with its fields checked (`ValueError` naming the first bad one) and normalized."""
    for field in ("model", "tag", "url"):
        value = getattr(entry, field)
        _require(isinstance(value, str) and value.strip() != "", field, "a non-empty string", value)
    sha = entry.sha256
    _require(
        isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha),
        "sha256",
        "64 lowercase hex digits",
        sha,
    )
    _require(
        _is_int(entry.classes) and entry.classes >= 1,
        "classes",
        "a positive integer",
        entry.classes,
    )
    _require(isinstance(entry.include_top, bool), "include_top", "true or false", entry.include_top)
    _require(isinstance(entry.notes, str), "notes", "a string", entry.notes)
    for field in ("dataset", "recipe", "license"):
        value = getattr(entry, field)
        _require(
            value is None or (isinstance(value, str) and value.strip() != ""),
            field,
            "a non-empty string or null",
            value,
        )
    for field in ("input_size", "crop_size"):
        value = getattr(entry, field)
        _require(_is_int(value) and value >= 1, field, "a positive integer", value)
    _require(
        entry.crop_size <= entry.input_size,
        "crop_size",
        f"at most input_size={entry.input_size}",
        entry.crop_size,
    )
    mean = entry.mean
    _require(
        isinstance(mean, list | tuple) and len(mean) == 3 and all(_is_number(m) for m in mean),
        "mean",
        "3 numbers (the RGB mean on 0..255)",
        mean,
    )
    _require(
        _is_number(entry.input_std) and entry.input_std > 0,
        "input_std",
        "a positive number",
        entry.input_std,
    )
    results = entry.results
    _require(
        isinstance(results, dict),
        "results",
        '{protocol: {"top1_error": %, "top5_error": %}}',
        results,
    )
    for protocol, values in results.items():
        check_choice("results protocol", protocol, RESULT_PROTOCOLS)
        _require(
            isinstance(values, dict) and values and set(values) <= set(RESULT_METRICS),
            f"results[{protocol!r}]",
            f"a non-empty object with keys among {RESULT_METRICS}",
            values,
        )
        for metric, value in values.items():
            _require(
                _is_number(value) and 0 <= value <= 100,
                f"results[{protocol!r}][{metric!r}]",
                "a percentage in [0, 100]",
                value,
            )
    return dataclasses.replace(
        entry,
        mean=tuple(float(m) for m in mean),
        input_std=float(entry.input_std),
        results={p: {m: float(v) for m, v in values.items()} for p, values in results.items()},
    )


def _entry(raw, origin: str, base: str | None = None) -> WeightsEntry:
    """A validated entry; `base` is the folder of a local manifest, `origin` where it came from."""
    if not isinstance(raw, dict):
        raise ValueError(
            f"Bad weights entry in {origin}: each entry must be a JSON object. Received: {raw!r}"
        )
    try:
        entry = WeightsEntry(**raw)
    except TypeError as error:
        raise ValueError(f"Bad weights entry in {origin}: {error}. Received: {raw!r}") from None
    try:
        entry = _checked(entry)
    except ValueError as error:
        raise ValueError(
            f"Bad weights entry in {origin}: {error} (entry {raw.get('model')!r}, "
            f"{raw.get('tag')!r})"
        ) from None
    if not urllib.parse.urlparse(entry.url).scheme:
        # A relative url is relative to the manifest, wherever that manifest lives.
        url = os.path.join(base, entry.url) if base else urllib.parse.urljoin(origin, entry.url)
        entry = dataclasses.replace(entry, url=url)
    return entry


def _read_manifest(location: str) -> list[WeightsEntry]:
    scheme = urllib.parse.urlparse(location).scheme
    try:
        if scheme in ("http", "https", "file"):
            with urllib.request.urlopen(location, timeout=30) as response:
                text = response.read().decode("utf-8")
            base = None
        else:
            with open(location, encoding="utf-8") as f:
                text = f.read()
            base = os.path.dirname(os.path.abspath(location))
        raw = json.loads(text)
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot read the weights manifest {location!r}: {error}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("weights"), list):
        raise ValueError(
            f'The weights manifest {location!r} must be a JSON object {{"weights": [...]}}.'
        )
    return [_entry(item, origin=location, base=base) for item in raw["weights"]]


def manifest() -> dict[tuple[str, str], WeightsEntry]:
    """All known entries, keyed by `(model, tag)`."""
    locations = [_PACKAGED_MANIFEST]
    locations += [p for p in os.environ.get(ENV_MANIFEST, "").split(os.pathsep) if p]
    entries = {}
    for location in locations:
        entries.update({(e.model, e.tag): e for e in _read_manifest(location)})
    entries.update(_registered)
    return entries


def train_command(model: str) -> str:
    """The command that trains `model` with the paper's recipe on ImageNet."""
    recipe = RECIPES.get(model)
    flags = f"--recipe={recipe}" if recipe else f"--recipe=paper_model_a --model={model}"
    return f"python training/train.py {flags} --dataset=imagenet2012 --data_dir=..."


def _no_entry_message(model: str, tag: str) -> str:
    return (
        f"No {tag!r} weights are published for {model}: the manifest has no ({model!r}, {tag!r}) "
        f"entry. To use your own: train it (`{train_command(model)}`), save "
        f"`model.save_weights('{model}.weights.h5')`, then either pass "
        f"weights='{model}.weights.h5', or call rectifier_zoo.register_weights('{model}', "
        f"'{tag}', url_or_path, sha256, dataset=..., recipe=..., license=...), or point the "
        f"{ENV_MANIFEST} environment variable at a JSON manifest "
        '{"weights": [{"model", "tag", "url", "sha256", ...}]}.'
    )


def _cache_root(cache_dir: str | None) -> str:
    if cache_dir is None:
        # The Keras cache root that get_file(cache_dir=None) uses; Keras 3 has no public
        # accessor for it.
        cache_dir = os.environ.get("KERAS_HOME", os.path.join("~", ".keras"))
    return os.path.abspath(os.path.expanduser(cache_dir))


def fetch(entry: WeightsEntry, cache_dir: str | None = None) -> str:
    """Downloads (once) and verifies `entry`; returns the local path.

    The file lands in `<cache_dir or the Keras cache>/models/rectifier_zoo/`; a file already
    there with the right sha256 is used offline. A download whose sha256 does not match is
    deleted and raises `ValueError`.
    """
    scheme = urllib.parse.urlparse(entry.url).scheme
    url = entry.url if scheme else "file://" + os.path.abspath(entry.url)
    fname = f"{entry.model}_{entry.tag}_{entry.sha256[:12]}.weights.h5"
    # An absolute `cache_subdir` is used as is by get_file, so `target` below is exactly where
    # the download lands (get_file may otherwise swap in /tmp/.keras for an unwritable root).
    directory = os.path.join(_cache_root(cache_dir), "models", CACHE_SUBDIR)
    target = os.path.join(directory, fname)
    try:
        path = keras.utils.get_file(
            fname,
            origin=url,
            file_hash=entry.sha256,
            hash_algorithm="sha256",
            cache_subdir=directory,
        )
    except ValueError as error:
        # Keras leaves the mismatching download in place; a bad file must not stay cached.
        if os.path.exists(target):
            os.remove(target)
        raise ValueError(
            f"The weights for ({entry.model!r}, {entry.tag!r}) from {entry.url} failed "
            f"verification ({error}). The file was removed from the cache; check the URL and "
            "sha256 in the manifest."
        ) from None
    except Exception as error:  # Keras raises a bare Exception for URL failures.
        raise ValueError(
            f"Cannot download the weights for ({entry.model!r}, {entry.tag!r}) from "
            f"{entry.url}: {error}"
        ) from None
    return path


def inspect_file(path: str) -> tuple[bool, int | None]:
    """`(has_top, classes)` of a `.weights.h5` file written by one of our models.

    Keras names the file's groups by layer class in build order; the top is the only place
    with Dense layers, and the last Dense bias has one entry per class.
    """
    import h5py  # a Keras dependency; imported here since only file loading needs it

    with h5py.File(path, "r") as f:
        if not hasattr(f.get("layers"), "items"):
            raise ValueError("it is not a Keras .weights.h5 file (no 'layers' group)")
        dense = sorted(
            (name for name in f.get("layers", {}) if name.split("_")[0] == "dense"),
            key=lambda n: int(n.rsplit("_", 1)[1]) if n != "dense" else 0,
        )
        if not dense:
            return False, None
        return True, int(f["layers"][dense[-1]]["vars"]["1"].shape[0])


def resolve(
    model: str, weights, include_top: bool = True, *, input_std: float | None = None
) -> WeightsFile | None:
    """Turns a builder's `weights=` argument into a verified local file (or `None`).

    Args:
        model: the model's registered name, to look `weights` up as a tag.
        weights: `None`, a tag (`"imagenet"`) or the path to a `.weights.h5` file.
        include_top: whether the model has its top (a file without one cannot fill it).
        input_std: the model's divisor after the mean subtraction, checked against an entry's
            card (with the card's mean against the mean the models subtract).
    """
    if weights is None:
        return None
    if isinstance(weights, os.PathLike):
        weights = os.fspath(weights)
    if not isinstance(weights, str):
        raise ValueError(
            "`weights` must be None, 'imagenet' (or another registered tag) or the path to a "
            f".weights.h5 file. Received: weights={weights!r}"
        )
    if os.path.exists(weights):
        try:
            has_top, file_classes = inspect_file(weights)
        except (OSError, KeyError, ValueError) as error:
            raise ValueError(f"Cannot read the weights file {weights!r}: {error}") from None
        if include_top and not has_top:
            raise ValueError(
                f"The weights file {weights!r} has no top (it was saved with include_top=False); "
                "build with include_top=False. Received: include_top=True"
            )
        return WeightsFile(weights, file_classes, has_top)
    if weights.endswith(".h5"):
        raise ValueError(f"The weights file does not exist. Received: weights={weights!r}")
    entry = manifest().get((model, weights))
    if entry is None:
        raise ValueError(_no_entry_message(model, weights))
    if include_top and not entry.include_top:
        raise ValueError(f"The {weights!r} weights of {model} have no top; use include_top=False.")
    expected_mean = np.asarray(paper.IMAGENET_MEAN_RGB)
    if not np.allclose(entry.mean, expected_mean, rtol=0, atol=1e-3) or (
        input_std is not None and not math.isclose(entry.input_std, input_std, rel_tol=1e-6)
    ):
        raise ValueError(
            f"The {weights!r} weights of {model} were trained on inputs minus mean "
            f"{list(entry.mean)}, divided by {entry.input_std}; the model subtracts "
            f"{list(paper.IMAGENET_MEAN_RGB)} and divides by {input_std}: its outputs would be "
            "wrong. Fix the entry's card or build the architecture with that input_std."
        )
    path = fetch(entry)
    return WeightsFile(path, entry.classes, entry.include_top, entry)


# Layer names of the builder (models.py): the top's fc layers and their rectifiers, and the
# trunk's conv{s} / conv{s}_{i} with their rectifiers, s the stage.
_HEAD_LAYER = re.compile(r"(?:prelu_|relu_)?fc\d+")
_CLASSIFIER = re.compile(r"fc(\d+)")
_TRUNK_LAYER = re.compile(r"(?:conv|prelu|relu)(\d+)(?:_\d+)?")
_SLOPES = re.compile(r"prelu(?:\d+(?:_\d+)?|_fc\d+)")
_MAX_LISTED = 6


def adapt_input_kernel(kernel, channels: int) -> np.ndarray:
    """An RGB first-layer kernel `(k, k, 3, filters)` for `channels` input channels.

    As timm's `adapt_input_conv`: 1 channel sums the RGB kernels (a gray image then gives what
    the RGB kernels give on that image repeated in R, G and B); any other count repeats the RGB
    kernels (R, G, B, R, ...) and scales them by `3 / channels`, so that an input whose channels
    repeat R, G, B keeps the response.
    """
    kernel = np.asarray(kernel)
    if kernel.ndim != 4 or kernel.shape[2] != 3:
        raise ValueError(
            "`adapt_input_kernel` needs an RGB kernel of shape (k, k, 3, filters). "
            f"Received: shape={kernel.shape}"
        )
    if not _is_int(channels) or channels < 1:
        raise ValueError(f"`channels` must be a positive integer. Received: channels={channels!r}")
    if channels == 1:
        return kernel.sum(axis=2, keepdims=True)
    repeated = np.tile(kernel, (1, 1, math.ceil(channels / 3), 1))[:, :, :channels]
    return (repeated * (3.0 / channels)).astype(kernel.dtype)


def _snake_case(name: str) -> str:
    # Keras's naming.to_snake_case, which names the groups of a .weights.h5 file.
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras_paths(model: keras.Model) -> dict[str, str]:
    """`{group in the file's "layers": layer name}` as Keras names the groups of `model`.

    For files written by Keras versions that do not store the layer names: Keras names each
    group by the layer's class in `model.layers` order (`conv2d`, `conv2d_1`, ...).
    """
    used, paths = {}, {}
    for layer in model.layers:
        key = _snake_case(type(layer).__name__)
        if key in used:
            used[key] += 1
            paths[f"{key}_{used[key]}"] = layer.name
        else:
            used[key] = 0
            paths[key] = layer.name
    return paths


def _file_layers(h5file, model: keras.Model) -> tuple[dict, set]:
    """`{layer name: [h5py datasets]}` of the layers with variables in an open weights file, and
    the groups without a stored name that no layer of `model` accounts for (named by group)."""
    group = h5file.get("layers")
    if group is None or not hasattr(group, "items"):
        raise ValueError("it is not a Keras .weights.h5 file (no 'layers' group)")
    fallback = None
    layers, unnamed = {}, set()
    for key, layer_group in group.items():
        variables = layer_group.get("vars") if hasattr(layer_group, "get") else None
        if variables is None:
            continue
        datasets = [variables[k] for k in sorted(variables, key=int) if k.isdigit()]
        if not datasets:
            continue
        name = variables.attrs.get("name")
        if isinstance(name, bytes):
            name = name.decode("utf-8")
        if name is None:
            fallback = fallback if fallback is not None else _keras_paths(model)
            name = fallback.get(key)
            if name is None:
                name = key
                unnamed.add(key)
        layers[str(name)] = datasets
    return layers, unnamed


def _listed(names) -> str:
    names = list(names)
    more = f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    return ", ".join(names[:_MAX_LISTED]) + more


def _shapes(variables, shapes) -> str:
    return ", ".join(
        f"{name} {tuple(shape)}" for name, shape in zip(variables, shapes, strict=False)
    )


def _initializer_name(initializer) -> str:
    config = {k: v for k, v in initializer.get_config().items() if k != "seed" and v is not None}
    arguments = ", ".join(f"{k}={v}" for k, v in config.items())
    return f"{type(initializer).__name__}({arguments})"


def _classifier(model_layers: dict) -> str | None:
    """The model's classifier, its last `fc{n}` layer; `None` without a top."""
    indices = [int(m.group(1)) for n in model_layers if (m := _CLASSIFIER.fullmatch(n))]
    return f"fc{max(indices)}" if indices else None


def _stage(name: str) -> int | None:
    match = _TRUNK_LAYER.fullmatch(name)
    return int(match.group(1)) if match else None


def _model_input_std(model: keras.Model) -> float | None:
    """The divisor of the model's own mean subtraction; `None` without one."""
    layer = next((layer for layer in model.layers if layer.name == "mean_subtraction"), None)
    variance = getattr(layer, "input_variance", None)
    if variance is None:
        return None
    return float(np.sqrt(np.asarray(variance, "float64").ravel()[0]))


def _plan(model, model_layers: dict, file_layers: dict, classifier: str | None):
    """What to do with each model layer: ("load" | "reinitialize" | "adapt", layer, datasets)
    entries, the layers missing from the file, and (name, names, file shapes, model shapes) of
    the layers whose shapes differ in no way we adapt."""
    first_conv = next(
        (layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)), None
    )
    plan, missing, differ = [], [], []
    for name, layer in model_layers.items():
        datasets = file_layers.get(name)
        if datasets is None:
            missing.append(name)
            continue
        names = [v.name for v in layer.weights]
        want = [tuple(v.shape) for v in layer.weights]
        got = [tuple(d.shape) for d in datasets]
        if want == got:
            plan.append(("load", layer, datasets))
        elif (
            name == classifier
            and len(want) == len(got) == 2
            and want[0][:-1] == got[0][:-1]
            and got[1] == got[0][-1:]
        ):
            plan.append(("reinitialize", layer, datasets))
        elif (
            name == first_conv
            and len(want) == len(got) == 2
            and len(got[0]) == 4
            and got[0][2] == 3
            and want[0][:2] == got[0][:2]
            and want[0][3] == got[0][3]
            and want[1] == got[1]
        ):
            plan.append(("adapt", layer, datasets))
        else:
            differ.append((name, names, got, want))
    return plan, missing, differ


def _file_only_layers(model_layers: dict, file_layers: dict, unnamed: set, classifier):
    """The file's layers the model lacks: those a model without top skips (the file's top and
    deeper stages; in a file without layer names, the groups beyond the model's own), and the
    rest."""
    deepest = max((s for n in model_layers if (s := _stage(n)) is not None), default=0)
    skipped, extra = [], []
    for name in file_layers:
        if name in model_layers:
            continue
        stage = _stage(name)
        if classifier is None and (
            _HEAD_LAYER.fullmatch(name)
            or (stage is not None and stage > deepest)
            or name in unnamed
        ):
            skipped.append(name)
        else:
            extra.append(name)
    return skipped, extra


def _check_fit(describe, model_name, model_layers, file_layers, missing, differ, extra) -> None:
    """Raises one ValueError when the file does not fit the model, naming the likely cause
    (ReLU against PReLU, channel-shared against channel-wise slopes) where there is one."""
    file_slopes = [n for n in file_layers if _SLOPES.fullmatch(n)]
    model_slopes = [n for n in model_layers if _SLOPES.fullmatch(n)]
    if file_slopes and not model_slopes and any(n in extra for n in file_slopes):
        raise ValueError(
            f"{describe} holds PReLU slopes ({_listed(file_slopes)}): it was trained with "
            "activation='prelu', and the model was built with activation='relu', which "
            "would drop the slopes and change every output. Build the model with "
            "activation='prelu'."
        )
    same_convs = any(n in file_layers for n in model_layers if n.startswith("conv"))
    if model_slopes and not file_slopes and same_convs:
        raise ValueError(
            f"{describe} holds no PReLU slopes: it was trained with activation='relu', "
            "and the model was built with activation='prelu'. Build the model with "
            "activation='relu'."
        )
    shared = [
        (got[0] == (), want[0] == ())
        for name, _, got, want in differ
        if _SLOPES.fullmatch(name) and len(got) == len(want) == 1
    ]
    if differ and not missing and not extra and len(shared) == len(differ):
        if all(file_shared and not model_shared for file_shared, model_shared in shared):
            raise ValueError(
                f"{describe} holds one PReLU slope per layer (channel_shared=True); the "
                "model was built with one per channel. Build it with channel_shared=True."
            )
        if all(model_shared and not file_shared for file_shared, model_shared in shared):
            raise ValueError(
                f"{describe} holds one PReLU slope per channel (channel_shared=False); the "
                "model was built with one per layer. Build it with channel_shared=False."
            )
    if not (missing or differ or extra):
        return
    problems = []
    if differ:
        lines = [
            f"{name} {_shapes(names, got)} in the file, {_shapes(names, want)} in the model"
            for name, names, got, want in differ
        ]
        more = len(lines) - _MAX_LISTED
        problems.append(
            "shapes differ: "
            + "; ".join(lines[:_MAX_LISTED])
            + (f"; and {more} more" if more > 0 else "")
        )
    if missing:
        problems.append(f"layers missing from the file: {_listed(missing)}")
    if extra:
        problems.append(f"layers only in the file: {_listed(extra)}")
    raise ValueError(
        f"{describe} does not fit the model {model_name!r}: "
        + "; ".join(problems)
        + ". Was it saved from another architecture, depth or width?"
    )


def _apply(plan: list, describe: str) -> tuple[list, list, list]:
    """Carries out the plan; returns the names loaded, re-initialized and adapted."""
    loaded, reinitialized, adapted = [], [], []
    for action, layer, datasets in plan:
        arrays = [np.asarray(d) for d in datasets]
        if action == "load":
            layer.set_weights(arrays)
            loaded.append(layer.name)
        elif action == "adapt":
            channels = layer.kernel.shape[2]
            layer.set_weights([adapt_input_kernel(arrays[0], channels), arrays[1]])
            adapted.append(layer.name)
            rule = "summed" if channels == 1 else f"repeated and scaled by 3/{channels}"
            logger.info(
                "%s: %s adapted from 3 to %d input channels (RGB kernels %s).",
                describe,
                layer.name,
                channels,
                rule,
            )
        else:
            layer.kernel.assign(layer.kernel_initializer(layer.kernel.shape, layer.kernel.dtype))
            if layer.bias is not None:
                layer.bias.assign(layer.bias_initializer(layer.bias.shape, layer.bias.dtype))
            reinitialized.append(layer.name)
            logger.warning(
                "%s has a %d-class classifier, the model %d classes: every layer loaded "
                "but %s, which starts from its initializer %s.",
                describe,
                datasets[1].shape[0],
                layer.kernel.shape[-1],
                layer.name,
                _initializer_name(layer.kernel_initializer),
            )
    return loaded, reinitialized, adapted


def load_weights(model: keras.Model, weights, *, architecture: str | None = None) -> LoadedWeights:
    """Loads `weights` into `model`, a model built by `rectifier_zoo`, layer by layer by name.

    Every layer with variables must find the same-named layer with the same shapes in the
    file, except:

    - a model without top (`include_top=False`, `features_only=True`) skips the file's fc
      layers and the stages deeper than its own;
    - a classifier (the last fc layer) with another class count than the file's starts from
      its initializer (the builder's: fixed std `paper.FC_STDS[2]` unless `fc_initializer` was
      given), for fine-tuning on another label set; one WARNING line of the `"rectifier_zoo"`
      logger says so, naming the file and both class counts;
    - a first convolution with another input channel count than the file's 3 (RGB) takes the
      adapted RGB kernels (`adapt_input_kernel`); an INFO line says so.

    Nothing is loaded unless everything fits: anything else (another architecture or depth,
    PReLU slopes for a ReLU model or none for a PReLU model, channel-shared against
    channel-wise slopes, a damaged file) raises one `ValueError` naming the file and the layers.

    Args:
        model: the model, built (any input size) by a `rectifier_zoo` builder.
        weights: the path to a `.weights.h5` file, a registered tag such as `"imagenet"`, or a
            `WeightsFile`.
        architecture: the registered model name to look a tag up under; default `model.name`.

    Returns:
        A `LoadedWeights` naming the layers loaded, re-initialized, adapted and skipped.
    """
    import h5py  # a Keras dependency; imported here since only file loading needs it

    model_layers = {layer.name: layer for layer in model.layers if layer.weights}
    classifier = _classifier(model_layers)
    if not isinstance(weights, WeightsFile):
        if weights is None:
            raise ValueError("`weights` must be a file, a registered tag or a WeightsFile.")
        weights = resolve(
            architecture or model.name,
            weights,
            classifier is not None,
            input_std=_model_input_std(model),
        )
    describe = weights.describe()
    try:
        h5file = h5py.File(weights.path, "r")
    except OSError as error:
        raise ValueError(
            f"{describe} cannot be read: it is not a readable HDF5 file (truncated or damaged; "
            f"h5py: {error}). Download or save it again."
        ) from None
    with h5file:
        try:
            file_layers, unnamed = _file_layers(h5file, model)
        except (ValueError, OSError, KeyError) as error:
            raise ValueError(f"{describe} cannot be read: {error}") from None
        plan, missing, differ = _plan(model, model_layers, file_layers, classifier)
        skipped, extra = _file_only_layers(model_layers, file_layers, unnamed, classifier)
        _check_fit(describe, model.name, model_layers, file_layers, missing, differ, extra)
        loaded, reinitialized, adapted = _apply(plan, describe)
    return LoadedWeights(
        weights.path, tuple(loaded), tuple(reinitialized), tuple(adapted), tuple(skipped)
    )
