"""Runs every benchmark in benchmarks/ and writes one result file and a Markdown table.

    python benchmarks/run.py [--quick] [--only prelu_overhead,training] [--no_readme]
        [--extra "training=--input_size 112"]
    python benchmarks/run.py --readme_only      # regenerate README's table from the latest JSON

Each benchmark runs in its own process (so each sets up TensorFlow its own way) and measures its
comparisons side by side, interleaved, as medians. The figures are gathered into
`benchmarks/results/<date>-<host>.json` (keys like `prelu_overhead.ours_vs_relu`, see KEYS) and
`benchmarks/results/<date>-<host>.md` (`<date>-<host>-2` and on for later runs that day);
README.md's "Performance" section, between the `<!-- performance:start -->` and
`<!-- performance:end -->` markers, is rewritten from that JSON.
The targets are those of `benchmarks/targets.py`; a missed target is reported as missed.
Every figure comes with its spread over the repetitions where the benchmark gives one
(`<figure>_range` in its raw JSON: [min, max]); with `--quick` a target inside that spread is
"too noisy to judge", not met or missed: the full run decides. An MFU above 1 is an error in the
measurement (the peak was not the peak): run.py refuses to write such a result.
`--quick` takes under 10 minutes on 2 cores with bf16 matrix units (AMX); without them the
bf16 training steps are emulated and many times slower (at 224x224, tens of minutes on a 2-core
AMD EPYC): there, `--extra "training=--input_size 64"` keeps it under 10 minutes.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time

from targets import TARGETS, describe

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
README = os.path.join(os.path.dirname(HERE), "README.md")
START, END = "<!-- performance:start -->", "<!-- performance:end -->"

# benchmark -> (arguments, arguments with --quick)
BENCHMARKS = {
    "prelu_overhead": ([], ["--quick"]),
    "training": ([], ["--quick"]),
    "input_pipeline": ([], ["--images", "32", "--repeats", "5"]),
    "evaluation": ([], ["--images", "2", "--latency_repeats", "20", "--large_repeats", "3"]),
}

# (key, how to read it from the benchmarks' raw JSON); the targets are in targets.py.
KEYS = [
    ("prelu_overhead.ours_vs_relu", ("prelu_overhead", "ours_vs_relu")),
    ("prelu_overhead.keras_prelu_vs_relu", ("prelu_overhead", "keras_prelu_vs_relu")),
    ("prelu_overhead.ours_vs_keras_prelu", ("prelu_overhead", "ours_vs_keras_prelu")),
    ("prelu_overhead.ours_bf16_vs_relu_bf16", ("prelu_overhead", "ours_bf16_vs_relu_bf16")),
    ("training.model_a_vs_vgg19_flops", ("training", "model_a_vs_vgg19_flops")),
    ("training.model_a_mfu", ("training", "model_a_mfu")),
    ("training.model_a_bf16_mfu", ("training", "model_a_bf16_mfu")),
    ("training.model_a_bf16_speedup", ("training", "model_a_bf16_speedup")),
    ("training.vgg19_bf16_speedup", ("training", "vgg19_bf16_speedup")),
    ("training.model_a_bf16_vs_keras_dense", ("training", "model_a_bf16_vs_keras_dense")),
    ("training.model_a_bf16_caffe_sgd_vs_keras_sgd",
     ("training", "model_a_bf16_caffe_sgd_vs_keras_sgd")),
    ("input_pipeline.fused_vs_unfused", ("input_pipeline", "fused_speedup")),
    ("input_pipeline.fused_vs_keras_layers", ("input_pipeline", "fused_vs_keras_layers")),
    ("input_pipeline.integer_fast_vs_default",
     ("input_pipeline", "integer_fast_vs_default")),
    ("input_pipeline.images_per_sec_per_core",
     ("input_pipeline", "images_per_second_per_core", "fused")),
    ("evaluation.dense_vs_crops", ("evaluation", "dense_vs_crops", "speedup")),
    ("serving.latency_ms_p50",
     ("evaluation", "latency_batch1", "serving_default(jpeg bytes)", "median_ms")),
    ("serving.latency_ms_p99",
     ("evaluation", "latency_batch1", "serving_default(jpeg bytes)", "p99_ms")),
    ("serving.large_jpeg_vs_decode",
     ("evaluation", "large_jpeg", "vs_decode", "serving_default, model_tiny")),
    ("serving.refuse_20000px_jpeg_s", ("evaluation", "refuse_20000px_jpeg", "seconds")),
    ("serving.refuse_20000px_jpeg_rss_mb",
     ("evaluation", "refuse_20000px_jpeg", "max_rss_growth_mb")),
]  # fmt: skip


def run_benchmark(name: str, quick: bool, extra: tuple = ()) -> dict:
    """Runs benchmarks/<name>.py in a subprocess (with `extra` arguments last) and returns its
    JSON."""
    full_args, quick_args = BENCHMARKS[name]
    with tempfile.TemporaryDirectory() as tmp:
        output = os.path.join(tmp, f"{name}.json")
        command = [sys.executable, os.path.join(HERE, f"{name}.py"), "--output", output]
        command += quick_args if quick else full_args
        command += list(extra)
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        if result.returncode != 0 or not os.path.exists(output):
            raise RuntimeError(f"{name} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        with open(output) as f:
            raw = json.load(f)
    raw["command"] = " ".join(["python", f"benchmarks/{name}.py", *command[4:]])
    raw["wall_seconds"] = time.perf_counter() - start
    return raw


def _lookup(raw: dict, path: tuple):
    value = raw
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


TOO_NOISY = "too noisy to judge"


class MeasurementError(RuntimeError):
    """A figure that cannot be right, e.g. an MFU above 1."""


def check_measurements(figures: dict) -> None:
    """Raises MeasurementError for an impossible figure: an MFU (a `*_mfu` key) above 1 means the
    measured peak was not the machine's peak, so the run measured something wrong."""
    wrong = {k: v for k, v in figures.items() if k.endswith("_mfu") and v is not None and v > 1}
    if wrong:
        raise MeasurementError(
            f"MFU above 1, an error in the measurement (the peak is not the peak): {wrong}"
        )


def verdict(key: str, value: float, value_range, figures: dict, quick: bool, ranges=None):
    """True / False / None (no target) / TOO_NOISY: with --quick, a target whose bound lies
    within the figure's [min, max] over the repetitions (for a bound that is another figure:
    whose [min, max] overlaps that figure's) is not judged; the full run decides."""
    if key not in TARGETS:
        return None
    target = TARGETS[key]
    met = target.met(value, figures)
    if not quick or met is None or not value_range:
        return met
    bound = target.bound_value(figures)
    low, high = bound, bound
    if isinstance(target.bound, str) and (ranges or {}).get(target.bound):
        low, high = ranges[target.bound]
    if value_range[0] <= high and low <= value_range[1]:
        return TOO_NOISY
    return met


def _range_of(raw: dict, path: tuple):
    """A figure's [min, max] over the repetitions, where its benchmark gives one: the sibling
    key `<name>_range`, or for a nested figure `<parent>_range` -> name."""
    found = _lookup(raw, (*path[:-1], f"{path[-1]}_range"))
    if found is None and len(path) > 2:
        found = _lookup(raw, (*path[:-2], f"{path[-2]}_range", path[-1]))
    return found


def summarize(raw: dict, quick: bool) -> dict:
    """The result file: the KEYS as nested figures with their spread, each target's verdict,
    and the raw results. Raises MeasurementError for an impossible figure (MFU > 1)."""
    from common import machine_info, relative_spread

    machine = machine_info()
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "quick": quick,
        "machine": machine,
        "targets": [],
    }
    figures, ranges = {}, {}
    for key, path in KEYS:
        value = _lookup(raw, path)
        if value is None:
            continue
        figures[key] = value
        ranges[key] = _range_of(raw, path)
    check_measurements(figures)
    for key, value in figures.items():
        group, name = key.split(".")
        result.setdefault(group, {})[name] = value
        value_range = ranges[key]
        result["targets"].append(
            {"key": key, "value": value, "range": value_range,
             "relative_spread": relative_spread(value, value_range),
             "target": describe(key),
             "met": verdict(key, value, value_range, figures, quick, ranges),
             "cpu": machine["cpu"], "amx": machine.get("amx")}
        )  # fmt: skip
    result["raw"] = raw
    return result


def markdown(result: dict) -> str:
    from common import cpu_label

    machine = result["machine"]
    lines = [
        f"Measured {result['date']} on {cpu_label(machine)} ({machine['cores']} cores"
        f"{', GPU ' + machine['gpu'] if machine.get('gpu') else ', no GPU'}), TensorFlow "
        f"{machine.get('tensorflow', '-')}, Keras {machine['keras']}"
        f"{' (--quick)' if result['quick'] else ''}, by `python benchmarks/run.py"
        f"{' --quick' if result['quick'] else ''}`:",
        "",
        "| figure | value | spread | target | met |",
        "|---|---:|---:|---|---|",
    ]
    for row in result["targets"]:
        met = {True: "yes", False: "**no**", None: "-", TOO_NOISY: TOO_NOISY}[row["met"]]
        spread = row.get("relative_spread")
        spread = "-" if spread is None else f"±{100 * spread / 2:.0f}%"
        lines.append(
            f"| `{row['key']}` | {row['value']:.3f} | {spread} | {row['target']} | {met} |"
        )
    lines.append("")
    lines.append(
        "spread: half the relative range (max - min) / value over the repetitions."
        + (" `--quick`: a target within the spread is too noisy to judge; the full run decides."
           if result["quick"] else "")
    )  # fmt: skip
    settings = []
    for name, raw in result["raw"].items():
        settings.append(f"- `{name}`: `{raw['command']}`")
    return "\n".join(lines + ["", "Commands:", *settings])


def update_readme(table: str, path: str = README) -> None:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if START not in text or END not in text:
        raise SystemExit(f"{path} has no {START} ... {END} section to rewrite")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}{START}\n{table}\n{END}{tail}")


def latest_result() -> dict:
    """The newest run.py result in RESULTS, by its own date (a checkout's file times say
    nothing). The other benchmarks' files there (gpu_jax, evaluation, ...) are not run.py's."""
    results = []
    for path in glob.glob(os.path.join(RESULTS, "*.json")):
        with open(path) as f:
            result = json.load(f)
        if isinstance(result, dict) and {"date", "targets", "machine"} <= set(result):
            results.append(result)
    if not results:
        raise SystemExit(f"No run.py results in {RESULTS}: run python benchmarks/run.py first")
    return max(results, key=lambda result: result["date"])


def result_stem(folder: str, today: str, host: str) -> str:
    """`<today>-<host>`, or with `-2`, `-3`, ... appended when a run of the same day and host is
    already there: a second run never overwrites the first."""
    stem, index = f"{today}-{host}", 1
    while os.path.exists(os.path.join(folder, f"{stem}.json")):
        index += 1
        stem = f"{today}-{host}-{index}"
    return stem


def parse_extra(items: list) -> dict:
    """["training=--input_size 112", ...] -> {"training": ("--input_size", "112")}."""
    extra = {}
    for item in items:
        name, sep, arguments = item.partition("=")
        if not sep or name not in BENCHMARKS:
            raise SystemExit(
                f"--extra takes NAME=ARGS with NAME one of {list(BENCHMARKS)}. Received: {item!r}"
            )
        extra[name] = (*extra.get(name, ()), *arguments.split())
    return extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, < 10 min")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset")
    parser.add_argument("--no_readme", action="store_true", help="leave README.md alone")
    parser.add_argument("--readme_only", action="store_true", help="README from the latest JSON")
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        help='more arguments for one benchmark, e.g. --extra "training=--input_size 112"',
    )
    args = parser.parse_args()
    extra = parse_extra(args.extra)
    if args.readme_only:
        update_readme(markdown(latest_result()))
        return
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        raise SystemExit(
            f"Unknown benchmark. Expected some of {list(BENCHMARKS)}. Received: {unknown}"
        )
    raw = {}
    for name in names:
        print(f"running {name} ...", flush=True)
        raw[name] = run_benchmark(name, args.quick, extra.get(name, ()))
        print(f"  done in {raw[name]['wall_seconds']:.0f} s", flush=True)
    result = summarize(raw, args.quick)
    os.makedirs(RESULTS, exist_ok=True)
    stem = result_stem(RESULTS, datetime.date.today().isoformat(), platform.node() or "host")
    with open(os.path.join(RESULTS, f"{stem}.json"), "w") as f:
        json.dump(result, f, indent=2)
    table = markdown(result)
    with open(os.path.join(RESULTS, f"{stem}.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    print(f"\nwrote {os.path.join(RESULTS, stem)}.json and .md")
    if not args.no_readme:
        update_readme(table)


if __name__ == "__main__":
    main()
