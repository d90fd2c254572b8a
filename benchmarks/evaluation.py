"""Speed of the exported endpoints and of the evaluator's protocols.

A Model-A-shaped net (Table 3 depth and layout, conv and fc widths divided by `--width_divisor`,
1000 classes) is exported as a SavedModel, then:

1. dense scoring (conv layers once, every 14x14 window of the conv map by SPP + fc in one batch)
   against scoring the same windows crop by crop (every 224x224 image crop at stride 16 px
   through the whole model) on one image with shorter side 384 (384x512);
2. images/s of the `center`, `ten_view` and `dense` (256, 384, 480, mirrored) protocols for one
   model and for an ensemble of three, on a few 375x500 JPEGs;
3. batch-1 latency (median, p99) of `serving_default` on JPEG bytes against calling the Keras
   model on the already decoded 224x224 view (eagerly and as a `tf.function`).

    python benchmarks/evaluation.py [--width_divisor 4] [--images 4] [--output out.json]

Target (issue 4): dense >= 5x faster than crop by crop.
"""

import argparse
import dataclasses
import os
import platform
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import emit_json  # noqa: E402

import rectifier_zoo  # noqa: E402
from rectifier_zoo import data, evaluation, export, imagenet  # noqa: E402
from rectifier_zoo.data import testing, transforms  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width_divisor", type=int, default=4)
    parser.add_argument("--images", type=int, default=4, help="images per protocol run")
    parser.add_argument("--latency_repeats", type=int, default=30)
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
    scorer = export.DenseScorer(model)
    result = {
        "benchmark": "evaluation",
        "model": model.name,
        "params": int(model.count_params()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, TF {tf.__version__}",
        "dense_vs_crops": dense_vs_crops(model, scorer),
        "protocols": protocol_speeds(paths, folder, args.images),
        "latency_batch1": latency(model, paths[0], args.latency_repeats),
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
    emit_json(result, args.output)


if __name__ == "__main__":
    main()
