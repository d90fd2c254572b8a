"""Speed of the exported endpoints and of the evaluator's protocols.

A Model-A-shaped net (Table 3 depth and layout, conv and fc widths divided by `--width_divisor`,
1000 classes) is exported as a SavedModel, then:

1. dense scoring (conv layers once, every 14x14 window of the conv map by SPP + fc in one batch)
   against scoring the same windows crop by crop (every 224x224 image crop at stride 16 px
   through the whole model) on one image with shorter side 384 (384x512);
2. images/s of the `center`, `ten_view` and `dense` (256, 384, 480, mirrored) protocols for one
   model and for an ensemble of three, on a few 375x500 JPEGs;
3. batch-1 latency (median, p99) of `serving_default` on JPEG bytes against calling the Keras
   model on the already decoded 224x224 view (eagerly and as a `tf.function`);
4. large images: `serving_default` on a 12 MP (4000x3000) photo-like JPEG against
   `tf.io.decode_jpeg` of the same file alone (interleaved, one process), with and without the
   DCT-domain downscaling; and the time and peak memory (max RSS growth) to refuse a real
   20000x20000 JPEG.

    python benchmarks/evaluation.py [--width_divisor 4] [--images 4] [--output out.json]

Targets (`benchmarks/targets.py`, judged by `benchmarks/run.py`): dense >= 5x faster than crop
by crop; serving a 12 MP JPEG <= 0.6x its bare decode (with `model_tiny`, whose forward pass is
small next to the decode; Model A's own forward pass alone takes about as long as the decode on
a 2-core CPU, so its ratio is printed too).
"""

import argparse
import dataclasses
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import emit_json  # noqa: E402

import rectifier_zoo  # noqa: E402
from rectifier_zoo import data, imagenet  # noqa: E402
from rectifier_zoo.data import testing, transforms  # noqa: E402
from rectifier_zoo.serving import evaluation, export  # noqa: E402


def reduced_model_a(divisor: int, seed: int = 0):
    base = rectifier_zoo.ARCHITECTURES["model_a"]
    stages = tuple(
        dataclasses.replace(stage, filters=stage.filters // divisor) for stage in base.stages
    )
    architecture = dataclasses.replace(
        base,
        name=f"model_a_div{divisor}",
        stages=stages,
        fc_units=tuple(units // divisor for units in base.fc_units),
    )
    return rectifier_zoo.build_model(architecture, classes=1000, seed=seed)


def _time(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def dense_vs_crops(model, scorer, shorter: int = 384, batch_size: int = 16) -> dict:
    image = np.random.default_rng(0).uniform(0, 255, (shorter, shorter * 4 // 3, 3))
    image = image.astype("float32")
    stride, crop = 16, 224  # Table 3: total stride 16, 224 crops
    dense = tf.function(lambda x: scorer(x, False), autograph=False)
    whole = tf.function(lambda x: model(x, training=False), autograph=False)
    dense(image[None])  # trace
    _, windows = scorer.score(image[None])
    offsets = [
        (y, x)
        for y in range(0, image.shape[0] - crop + 1, stride)
        for x in range(0, image.shape[1] - crop + 1, stride)
    ]
    assert len(offsets) == int(windows), (len(offsets), int(windows))

    def crop_by_crop():
        scores = []
        for i in range(0, len(offsets), batch_size):
            batch = np.stack(
                [image[y : y + crop, x : x + crop] for y, x in offsets[i : i + batch_size]]
            )
            scores.append(whole(batch).numpy())
        return np.concatenate(scores).mean(axis=0)

    whole(np.zeros((batch_size, crop, crop, 3), "float32"))  # trace
    whole(np.zeros((len(offsets) % batch_size or batch_size, crop, crop, 3), "float32"))
    dense_s = statistics.median(_time(lambda: dense(image[None]).numpy(), 3))
    crops_s = statistics.median(_time(crop_by_crop, 1))
    return {
        "image": list(image.shape[:2]),
        "windows": len(offsets),
        "dense_s": dense_s,
        "crop_by_crop_s": crops_s,
        "speedup": crops_s / dense_s,
    }


def protocol_speeds(paths: list[str], folder: str, num_images: int) -> list[dict]:
    source = data.get_source("folder", folder)
    rows = []
    for protocol in evaluation.PROTOCOLS:
        for members in ([paths[0]], paths):
            # One untimed image first: loading and tracing are not evaluation speed.
            evaluation.evaluate(members, source, protocol=protocol, max_images=1, progress=False)
            result = evaluation.evaluate(
                members, source, protocol=protocol, max_images=num_images, batch_size=8,
                progress=False,
            )  # fmt: skip
            row = result["rows"][-1]
            rows.append(
                {
                    "protocol": protocol,
                    "scales": row["scales"],
                    "models": len(members),
                    "images": row["images"],
                    "images_per_second": row["images_per_second"],
                }
            )
    return rows


def latency(model, path: str, repeats: int) -> dict:
    loaded = tf.saved_model.load(path)
    serve = loaded.signatures["serving_default"]
    jpeg = tf.constant([testing.encode_jpeg(testing.smooth_image(1, 375, 500))])
    config = transforms.TransformConfig(min_scale=224, max_scale=224)
    view = transforms.eval_transform(jpeg[0], config)[None].numpy()
    graph = tf.function(lambda x: model(x, training=False), autograph=False)
    calls = {
        "serving_default(jpeg bytes)": lambda: serve(images=jpeg)["probabilities"].numpy(),
        "keras model(decoded 224 view), eager": lambda: model(view, training=False).numpy(),
        "keras model(decoded 224 view), tf.function": lambda: graph(view).numpy(),
    }
    result = {}
    for name, call in calls.items():
        for _ in range(3):
            call()
        times = np.array(_time(call, repeats)) * 1000
        result[name] = {
            "median_ms": float(np.median(times)),
            "p99_ms": float(np.percentile(times, 99)),
        }
    return result


def photo_like_jpeg(height: int, width: int, seed: int = 0) -> bytes:
    """Smooth colour fields with mild sensor noise: a JPEG of a photo's size and entropy."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    fields = [
        128 + 100 * np.sin(x / 150) * np.cos(y / 210),
        128 + 90 * np.sin((x + y) / 330),
        128 + 80 * np.cos(x / 97 - y / 143),
    ]
    image = np.stack(fields, axis=-1) + rng.normal(0, 4, (height, width, 3))
    return testing.encode_jpeg(np.clip(image, 0, 255).astype(np.uint8), quality=90)


_HUGE_JPEG = """
import sys
import numpy as np
import tensorflow as tf
side = 20000
ramp = (np.arange(side, dtype=np.uint16) % 256).astype(np.uint8)
image = np.broadcast_to(ramp[None, :, None], (side, side, 1))
open(sys.argv[1], "wb").write(tf.io.encode_jpeg(image, quality=90).numpy())
"""


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def refuse_huge_jpeg(path: str, work: str) -> dict:
    """Time and max-RSS growth of serving_default refusing a real 20000x20000 JPEG.

    Run first, before any large decode, so that the process's peak is not already higher.
    """
    file = os.path.join(work, "huge.jpg")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", _HUGE_JPEG, file], check=True, env=env)
    with open(file, "rb") as f:
        huge = tf.constant([f.read()])
    serve = tf.saved_model.load(path).signatures["serving_default"]
    small = tf.constant([photo_like_jpeg(300, 400)])
    serve(images=small)  # traced and warm
    before = _max_rss_mb()
    start = time.perf_counter()
    try:
        serve(images=huge)
        refused, message = False, ""
    except tf.errors.InvalidArgumentError as error:
        lines = [line for line in error.message.splitlines() if "max_pixels" in line]
        refused, message = True, (lines or [error.message])[0].strip()[:200]
    seconds = time.perf_counter() - start
    return {
        "image": [20000, 20000],
        "file_mb": os.path.getsize(file) / 1e6,
        "refused": refused,
        "message": message,
        "seconds": seconds,
        "max_rss_growth_mb": _max_rss_mb() - before,
    }


def large_jpeg_latency(paths: dict[str, str], repeats: int) -> dict:
    """Batch-1 serving of a 12 MP JPEG by each export against `decode_jpeg` of it alone.

    The calls are interleaved round by round, so load on the machine hits them alike.
    """
    jpeg = tf.constant(photo_like_jpeg(3000, 4000))
    calls = {"decode_jpeg alone": lambda: tf.io.decode_jpeg(jpeg, channels=3).numpy()}
    for label, path in paths.items():
        serve = tf.saved_model.load(path).signatures["serving_default"]
        calls[label] = lambda serve=serve: serve(images=jpeg[None])["probabilities"].numpy()
    times = {label: [] for label in calls}
    for call in calls.values():
        call()  # warm-up
    for _ in range(repeats):
        for label, call in calls.items():
            times[label].extend(_time(call, 1))
    decode = np.array(times["decode_jpeg alone"])
    return {
        "image": [3000, 4000],
        "file_mb": len(jpeg.numpy()) / 1e6,
        "median_ms": {label: float(np.median(t)) * 1000 for label, t in times.items()},
        # Each round's ratio, then the median: a burst of load on a shared machine hits both
        # calls of a round alike.
        "vs_decode": {label: float(np.median(np.array(t) / decode)) for label, t in times.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width_divisor", type=int, default=4)
    parser.add_argument("--images", type=int, default=4, help="images per protocol run")
    parser.add_argument("--latency_repeats", type=int, default=30)
    parser.add_argument("--large_repeats", type=int, default=7, help="12 MP JPEG rounds")
    parser.add_argument("--output", default=None, help="JSON file")
    args = parser.parse_args()
    start = time.perf_counter()
    work = tempfile.mkdtemp(prefix="rectifier_zoo_bench_")
    model = reduced_model_a(args.width_divisor)
    names = imagenet.class_names()
    paths = [
        export.export_model(
            reduced_model_a(args.width_divisor, seed=i) if i else model,
            os.path.join(work, f"member{i}"),
            class_names=names,
        )
        for i in range(3)
    ]
    folder = os.path.join(work, "data")
    testing.write_image_folder(
        folder, [f"c{i}" for i in range(1000)][:1], {"train": 1, "val": args.images}, (375, 500)
    )
    # The folder source's class count must match the models': pad to 1000 empty training classes.
    for i in range(1, 1000):
        os.makedirs(os.path.join(folder, "train", f"c{i:04d}"), exist_ok=True)
    # The 12 MP comparison: the tiny net's forward pass is cheap, so the decode dominates.
    tiny = rectifier_zoo.model_tiny(classes=1000, seed=0)
    large_paths = {
        "serving_default, model_tiny": export.export_model(
            tiny, os.path.join(work, "tiny"), class_names=names
        ),
        "serving_default, model_tiny, no downscale": export.export_model(
            tiny, os.path.join(work, "tiny_full"), class_names=names, jpeg_downscale=False
        ),
        f"serving_default, {model.name}": paths[0],
    }
    refusal = refuse_huge_jpeg(paths[0], work)
    scorer = export.DenseScorer(model)
    result = {
        "benchmark": "evaluation",
        "model": model.name,
        "params": int(model.count_params()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, TF {tf.__version__}",
        "dense_vs_crops": dense_vs_crops(model, scorer),
        "protocols": protocol_speeds(paths, folder, args.images),
        "latency_batch1": latency(model, paths[0], args.latency_repeats),
        "large_jpeg": large_jpeg_latency(large_paths, args.large_repeats),
        "refuse_20000px_jpeg": refusal,
    }
    result["seconds"] = time.perf_counter() - start
    d = result["dense_vs_crops"]
    print(f"{result['model']} ({result['params'] / 1e6:.1f} M params), {result['machine']}")
    print(
        f"dense vs crop-by-crop at {d['image'][0]}x{d['image'][1]}, {d['windows']} windows: "
        f"dense {d['dense_s'] * 1000:.0f} ms, crops {d['crop_by_crop_s'] * 1000:.0f} ms, "
        f"{d['speedup']:.1f}x"
    )
    print(f"{'protocol':<10} {'scales':<16} {'models':>6} {'images':>6} {'images/s':>9}")
    for row in result["protocols"]:
        scales = ",".join(map(str, row["scales"]))
        print(
            f"{row['protocol']:<10} {scales:<16} {row['models']:>6} {row['images']:>6} "
            f"{row['images_per_second']:>9.2f}"
        )
    print(f"{'batch-1 call':<45} {'median ms':>9} {'p99 ms':>8}")
    for name, row in result["latency_batch1"].items():
        print(f"{name:<45} {row['median_ms']:>9.1f} {row['p99_ms']:>8.1f}")
    large = result["large_jpeg"]
    print(f"12 MP JPEG ({large['file_mb']:.1f} MB), batch 1: median ms, ratio to decode alone")
    for label, ms in large["median_ms"].items():
        print(f"  {label:<45} {ms:>8.1f} {large['vs_decode'][label]:>6.2f}")
    print(
        f"20000x20000 JPEG ({refusal['file_mb']:.1f} MB): refused={refusal['refused']} in "
        f"{refusal['seconds'] * 1000:.1f} ms, max RSS +{refusal['max_rss_growth_mb']:.0f} MB"
    )
    emit_json(result, args.output)


if __name__ == "__main__":
    main()
