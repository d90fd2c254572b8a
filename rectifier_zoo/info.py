"""The model table: depth, parameters and multiply-adds of every model, against the paper.

Run `python -m rectifier_zoo.info` (add `--json` for machine-readable rows). The counts come
from the built Keras graphs at 224x224, not from a formula. The paper gives multiply-adds
(Table 3) but no parameter counts, so the parameters are ours alone.
"""

import argparse
import json
import math

import keras

from rectifier_zoo import paper
from rectifier_zoo.architectures import ARCHITECTURES
from rectifier_zoo.models import build_model


def count_multiply_adds(model: keras.Model) -> int:
    """Multiply-adds of the conv and fc layers of a model built at a fixed input size.

    Convolutions count `out_h * out_w * k_h * k_w * c_in * c_out`, Dense layers
    `in * out`; rectifiers, pooling and biases are left out, as in the paper's Table 3.
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            output_shape = layer.output.shape
            spatial = (
                output_shape[1:3] if layer.data_format == "channels_last" else output_shape[2:]
            )
            if any(side is None for side in spatial):
                raise ValueError(
                    "count_multiply_adds needs a model built with a fixed input size. "
                    f"Received: output shape {output_shape} at layer {layer.name!r}"
                )
            total += math.prod(spatial) * math.prod(layer.kernel.shape)
        elif isinstance(layer, keras.layers.Dense):
            total += math.prod(layer.kernel.shape)
    return total


def model_rows(input_size: int = paper.CROP_SIZE, names=None) -> list[dict]:
    """One row per architecture: name, depth, counted parameters and multiply-adds, and the
    paper's multiply-adds where Table 3 gives them."""
    rows = []
    for name in names or [n for n in ARCHITECTURES if n != "model_tiny"]:
        architecture = ARCHITECTURES[name]
        model = build_model(architecture, input_shape=(input_size, input_size, 3))
        rows.append(
            {
                "model": name,
                "depth": architecture.depth,
                "params": model.count_params(),
                "multiply_adds": count_multiply_adds(model),
                "input_size": input_size,
                "paper_multiply_adds": architecture.paper_multiply_adds,
                "reference": architecture.reference,
            }
        )
        del model
        keras.backend.clear_session()
    return rows


def format_table(rows: list[dict]) -> str:
    """A Markdown table of `model_rows`."""

    def optional(value, scale, digits):
        return "-" if value is None else f"{value / scale:.{digits}f}"

    lines = [
        "| model | depth | params (M, counted) | multiply-adds at 224 (x10^10, counted) | "
        "paper multiply-adds (x10^10) | reference |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['depth']} | {row['params'] / 1e6:.1f} | "
            f"{row['multiply_adds'] / 1e10:.3f} | {optional(row['paper_multiply_adds'], 1e10, 2)} "
            f"| {row['reference']} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    parser.add_argument("--input_size", type=int, default=paper.CROP_SIZE)
    args = parser.parse_args(argv)
    rows = model_rows(args.input_size)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))


if __name__ == "__main__":
    main()
