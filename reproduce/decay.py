r"""How the weight decay compares with the loss gradient at initialization, layer by layer.

    python -m reproduce.decay [--depth 22] [--sizes 96,224] [--width 0.125] [--seeds 0,1,2]

For each init of the init study (MSRA fan-in, fan-out, Xavier) and each input size: the ratio
||dL/dW|| / (wd ||W||) of every conv and fc kernel of the `depth`-layer model (22: Fig. 2's
Model B) on one batch of the init study's synthetic images (centre crops, their labels), median
over the seeds. A ratio near 1 means that the coupled decay `wd * W`, which `CaffeSGD` adds to
the gradient, is as large as the gradient itself: the weights shrink about as fast as they
learn. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json

import keras
import numpy as np
import tensorflow as tf

from rectifier_zoo import paper
from reproduce import common, init
from reproduce.settings import FULL_SETTINGS


def decay_ratios(model: keras.Model, images, labels, weight_decay: float) -> dict[str, float]:
    """||dL/dW|| / (weight_decay ||W||) of each conv and fc layer's kernel, by layer name."""
    layers = [layer for layer in model.layers if init.is_weight_layer(layer)]
    with tf.GradientTape() as tape:
        scores = model(tf.convert_to_tensor(images, tf.float32), training=True)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, scores))
    gradients = tape.gradient(loss, [layer.kernel for layer in layers])
    return {
        layer.name: float(tf.norm(gradient) / (weight_decay * tf.norm(layer.kernel)))
        for layer, gradient in zip(layers, gradients, strict=True)
    }


def measure(
    depth: int,
    sizes: tuple[int, ...],
    width: float,
    seeds: tuple[int, ...],
    batch: int,
    train_images: int,
    weight_decay: float = paper.WEIGHT_DECAY,
    data_dir: str | None = None,
) -> dict:
    """`{size: {init: {"layers": [...], "ratio": [...]}}}`: each kernel's median over `seeds`."""
    results = {}
    for size in sizes:
        data = common.load_synthetic(
            size, FULL_SETTINGS.init_difficulty, train_images, batch, data_dir
        )
        images = common.center_crop(data.train_images[:batch], size)
        labels = data.train_labels[:batch]
        results[size] = {}
        for name in init.INITS:
            per_seed = []
            for seed in seeds:
                model = init.build(
                    init.builder_call(depth, name, width, size, seed), data.num_classes, dropout=0.0
                )
                per_seed.append(decay_ratios(model, images, labels, weight_decay))
                keras.backend.clear_session()
            layers = list(per_seed[0])
            results[size][name] = {
                "layers": layers,
                "ratio": [float(np.median([run[layer] for run in per_seed])) for layer in layers],
            }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1].strip())
    parser.add_argument("--depth", type=int, default=22, help="22: Model B (Fig. 2); 30: Fig. 3.")
    parser.add_argument("--sizes", default="96,224", help="Input sizes, comma-separated.")
    parser.add_argument("--width", type=float, default=FULL_SETTINGS.init_width)
    parser.add_argument("--seeds", default="0,1,2", help="Build seeds, comma-separated.")
    parser.add_argument("--batch", type=int, default=FULL_SETTINGS.batch_size)
    parser.add_argument(
        "--train_images", type=int, default=512, help="Images the standardization is taken from."
    )
    args = parser.parse_args(argv)
    try:
        sizes = tuple(int(size) for size in args.sizes.split(","))
        seeds = tuple(int(seed) for seed in args.seeds.split(","))
    except ValueError:
        parser.error(f"--sizes and --seeds take integers. Received: {args.sizes!r}, {args.seeds!r}")
    if args.batch > args.train_images:
        parser.error(f"--batch ({args.batch}) must not exceed --train_images ({args.train_images})")
    results = measure(args.depth, sizes, args.width, seeds, args.batch, args.train_images)
    print(
        f"||dL/dW|| / (wd ||W||), wd {paper.WEIGHT_DECAY}, depth {args.depth}, width {args.width}"
    )
    print("size  init          first conv  median conv  last conv  last fc")
    for size, by_init in results.items():
        for name, row in by_init.items():
            ratio = row["ratio"]
            convs = [r for layer, r in zip(row["layers"], ratio, strict=True) if "conv" in layer]
            print(
                f"{size:4d}  {name:12s}  {convs[0]:10.3g}  {np.median(convs):11.3g}  "
                f"{convs[-1]:9.3g}  {ratio[-1]:7.3g}"
            )
    print(
        json.dumps({"depth": args.depth, "width": args.width, "seeds": seeds, "results": results})
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
