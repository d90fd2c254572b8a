"""What the evaluator shows and writes: the progress bar, the table, the JSON and CSV rows."""

import csv
import json
import os
import sys
import time

CSV_FIELDS = (
    "model",
    "role",
    "weight",
    "protocol",
    "scales",
    "crop_size",
    "top1_error",
    "top5_error",
    "images",
    "skipped_images",
    "seconds",
    "images_per_second",
    "machine",
)


class ProgressBar:
    """`[=====.....] count/total rate images/s` on stderr, redrawn in place."""

    def __init__(self, total: int | None, enabled: bool):
        self.total, self.enabled, self.start = total, enabled, time.perf_counter()

    def update(self, count: int) -> None:
        if not self.enabled:
            return
        rate = count / max(time.perf_counter() - self.start, 1e-9)
        if self.total:
            done = int(30 * min(count / self.total, 1.0))
            bar = f"[{'=' * done}{'.' * (30 - done)}] {count}/{self.total}"
        else:
            bar = f"{count} images"
        sys.stderr.write(f"\r{bar} {rate:.1f} images/s")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def format_table(result: dict) -> str:
    """The rows as a fixed-width table (errors in percent)."""
    header = f"{'role':<9} {'top-1 %':>8} {'top-5 %':>8} {'images':>7} {'images/s':>9}  model"
    lines = [header, "-" * len(header)]
    for row in result["rows"]:
        lines.append(
            f"{row['role']:<9} {100 * row['top1_error']:>8.2f} {100 * row['top5_error']:>8.2f} "
            f"{row['images']:>7d} {row['images_per_second']:>9.1f}  {row['model']}"
        )
    first = result["rows"][0]
    lines.append(f"protocol={first['protocol']} scales={first['scales']} crop={first['crop_size']}")
    if first["skipped_images"]:
        names = ", ".join(result["skipped_names"][:5])
        lines.append(f"skipped {first['skipped_images']} undecodable images ({names})")
    return "\n".join(lines)


def print_table(result: dict) -> None:
    print(format_table(result))


def write_results(result: dict, json_path: str) -> tuple[str, str]:
    """Writes the rows as JSON (`json_path`) and CSV (same name, `.csv`); returns both paths."""
    folder = os.path.dirname(os.path.abspath(json_path))
    os.makedirs(folder, exist_ok=True)
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump({"rows": result["rows"]}, f, indent=2)
    csv_path = os.path.splitext(json_path)[0] + ".csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in result["rows"]:
            writer.writerow({**row, "scales": " ".join(str(s) for s in row["scales"])})
    return json_path, csv_path
