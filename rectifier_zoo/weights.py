"""Pretrained weights: a manifest of `(model, tag)` entries, resolution of `weights=`, and
download with sha256 verification into the Keras cache.

Entries come from, in order of precedence (later wins):
1. `weights_manifest.json`, shipped in the package;
2. the manifest files or URLs named by the `RECTIFIER_ZOO_WEIGHTS_MANIFEST` environment
   variable (several separated by `os.pathsep`);
3. `register_weights(...)` calls in this process.

A manifest is JSON: `{"weights": [{"model": "model_a", "tag": "imagenet", "url": "...",
"sha256": "...", "classes": 1000, "include_top": true, "notes": "..."}]}`. `url` may be
`https://`, `http://`, `file://` or a local path (relative paths are relative to the manifest).
"""

import dataclasses
import json
import os
import urllib.parse
import urllib.request

import keras

ENV_MANIFEST = "RECTIFIER_ZOO_WEIGHTS_MANIFEST"
CACHE_SUBDIR = "rectifier_zoo"
_PACKAGED_MANIFEST = os.path.join(os.path.dirname(__file__), "weights_manifest.json")


@dataclasses.dataclass(frozen=True)
class WeightsEntry:
    """One published weights file for a model."""

    model: str
    tag: str
    url: str
    sha256: str
    classes: int = 1000
    include_top: bool = True
    notes: str = ""


@dataclasses.dataclass(frozen=True)
class WeightsFile:
    """A verified local weights file and what it holds."""

    path: str
    classes: int | None
    include_top: bool


_registered: dict[tuple[str, str], WeightsEntry] = {}


def register_weights(
    model: str,
    tag: str,
    url: str,
    sha256: str,
    classes: int = 1000,
    include_top: bool = True,
    notes: str = "",
) -> WeightsEntry:
    """Makes `weights=tag` resolve to `url` for `model` in this process.

    Example, after training and exporting weights with `model.save_weights("a.weights.h5")`:
    `register_weights("model_a", "imagenet", "/data/a.weights.h5", sha256=<sha256sum of it>)`.
    """
    entry = _entry(
        {
            "model": model,
            "tag": tag,
            "url": url,
            "sha256": sha256,
            "classes": classes,
            "include_top": include_top,
            "notes": notes,
        },
        origin="register_weights",
    )
    _registered[(model, tag)] = entry
    return entry


def _entry(raw: dict, origin: str, base: str | None = None) -> WeightsEntry:
    """A validated entry; `base` is the folder of a local manifest, `origin` where it came from."""
    try:
        entry = WeightsEntry(**raw)
    except TypeError as error:
        raise ValueError(f"Bad weights entry in {origin}: {error}. Received: {raw!r}") from None
    sha = entry.sha256
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        raise ValueError(
            f"Bad weights entry in {origin}: `sha256` must be 64 lowercase hex digits. "
            f"Received: sha256={sha!r}"
        )
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


def _no_entry_message(model: str, tag: str) -> str:
    return (
        f"No {tag!r} weights are published for {model}: the manifest has no ({model!r}, {tag!r}) "
        "entry. To use your own: train it (`python training/train.py --recipe paper_"
        f"{model}` for the paper's recipe), save `model.save_weights('{model}.weights.h5')`, then "
        f"either pass weights='{model}.weights.h5', or call rectifier_zoo.register_weights("
        f"'{model}', '{tag}', url_or_path, sha256), or point the {ENV_MANIFEST} environment "
        'variable at a JSON manifest {"weights": [{"model", "tag", "url", "sha256", ...}]}.'
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
        dense = sorted(
            (name for name in f.get("layers", {}) if name.split("_")[0] == "dense"),
            key=lambda n: int(n.rsplit("_", 1)[1]) if n != "dense" else 0,
        )
        if not dense:
            return False, None
        return True, int(f["layers"][dense[-1]]["vars"]["1"].shape[0])


def resolve(model: str, weights, include_top: bool, classes: int) -> WeightsFile | None:
    """Turns a builder's `weights=` argument into a verified local file (or `None`)."""
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
        except OSError as error:
            raise ValueError(f"Cannot read the weights file {weights!r}: {error}") from None
        if include_top and not has_top:
            raise ValueError(
                f"The weights file {weights!r} has no top (it was saved with include_top=False); "
                "build with include_top=False. Received: include_top=True"
            )
        if include_top and file_classes != classes:
            raise ValueError(
                f"The weights file {weights!r} has a {file_classes}-class top; pass "
                f"classes={file_classes} or include_top=False. Received: classes={classes}"
            )
        return WeightsFile(weights, file_classes, has_top)
    if weights.endswith(".h5"):
        raise ValueError(f"The weights file does not exist. Received: weights={weights!r}")
    entry = manifest().get((model, weights))
    if entry is None:
        raise ValueError(_no_entry_message(model, weights))
    if include_top and classes != entry.classes:
        raise ValueError(
            f"With weights={weights!r} and include_top=True, `classes` must be "
            f"{entry.classes}. Received: classes={classes}"
        )
    if include_top and not entry.include_top:
        raise ValueError(f"The {weights!r} weights of {model} have no top; use include_top=False.")
    return WeightsFile(fetch(entry), entry.classes, entry.include_top)


def load_weights(model: keras.Model, weights_file: WeightsFile, build_full_model) -> None:
    """Loads `weights_file` into `model`; a trunk-only `model` takes the trunk of a full file.

    Args:
        model: the model just built.
        weights_file: from `resolve`.
        build_full_model: `classes -> keras.Model`, the same architecture with its top, used
            when `model` has no top but the file has one.
    """
    if _has_layer(model, "predictions") or not weights_file.include_top:
        model.load_weights(weights_file.path)
        return
    full = build_full_model(weights_file.classes)
    full.load_weights(weights_file.path)
    for layer in model.layers:
        if layer.weights and _has_layer(full, layer.name):
            layer.set_weights(full.get_layer(layer.name).get_weights())


def _has_layer(model: keras.Model, name: str) -> bool:
    return any(layer.name == name for layer in model.layers)
