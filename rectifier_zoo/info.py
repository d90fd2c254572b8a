"""The model table: depth, parameters and multiply-adds of every model, against the paper; and
the published weights with their cards.

Run `python -m rectifier_zoo.info` (add `--json` for machine-readable rows, `--weights` for the
weights section alone). The counts come from the built Keras graphs at 224x224, not from a
formula. The paper gives multiply-adds (Table 3) but no parameter counts, so the parameters are
ours alone.
"""

import argparse
import json
import math

import keras

from rectifier_zoo import paper
from rectifier_zoo import weights as weights_lib
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


def weights_cards() -> list[dict]:
    """The card of every known weights entry (packaged manifest, environment, registered)."""
    entries = weights_lib.manifest()
    return [entries[key].card for key in sorted(entries)]


def format_weights(cards: list[dict]) -> str:
    """A Markdown section of `weights_cards`: one row per entry, or a line saying none exist."""
    lines = ["## Published weights", ""]
    if not cards:
        lines.append(
            "None are published yet (the manifest is empty). Train a model "
            f"(`{weights_lib.train_command('model_a')}`), then "
            "`rectifier_zoo.register_weights(...)` it or list it in a manifest named by "
            f"${weights_lib.ENV_MANIFEST}."
        )
        return "\n".join(lines)

    def results(card):
        return (
            "; ".join(
                f"{protocol}: "
                + ", ".join(f"{metric} {value:g}%" for metric, value in values.items())
                for protocol, values in card["results"].items()
            )
            or "-"
        )

    lines += [
        "| model | tag | classes | top | dataset | recipe | input (size / crop, mean, std) "
        "| results | license | sha256 |",
        "|---|---|---:|---|---|---|---|---|---|---|",
    ]
    for card in cards:
        contract = card["input"]
        mean = ", ".join(f"{m:g}" for m in contract["mean"])
        lines.append(
            f"| {card['model']} | {card['tag']} | {card['classes']} | "
            f"{'yes' if card['include_top'] else 'no'} | {card['dataset'] or '-'} | "
            f"{card['recipe'] or '-'} | {contract['size']} / {contract['crop']}, ({mean}), "
            f"{contract['std']:g} | {results(card)} | {card['license'] or '-'} | "
            f"{card['sha256'][:12]} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    parser.add_argument(
        "--weights", action="store_true", help="only the published weights (no model is built)"
    )
    parser.add_argument("--input_size", type=int, default=paper.CROP_SIZE)
    args = parser.parse_args(argv)
    cards = weights_cards()
    if args.weights:
        print(json.dumps(cards, indent=2) if args.json else format_weights(cards))
        return
    rows = model_rows(args.input_size)
    print(
        json.dumps(rows, indent=2)
        if args.json
        else format_table(rows) + "\n\n" + format_weights(cards)
    )


if __name__ == "__main__":
    main()
