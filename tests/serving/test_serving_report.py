"""The evaluator's table and its JSON / CSV rows (pure Python)."""

import csv
import json

from rectifier_zoo.serving import report


def _result(skipped=0):
    row = {
        "model": "m/1", "role": "member", "weight": 1.0, "protocol": "dense",
        "scales": [256, 384], "crop_size": 224, "top1_error": 0.25, "top5_error": 0.125,
        "images": 8, "skipped_images": skipped, "seconds": 2.0, "images_per_second": 4.0,
        "machine": "x86_64", "not_a_column": "left out of the CSV",
    }  # fmt: skip
    return {"rows": [row, {**row, "role": "ensemble"}], "skipped_names": ["a.jpg"] * skipped}


def test_table_in_percent_with_the_protocol_and_skipped_files():
    table = report.format_table(_result(skipped=1)).splitlines()
    assert table[0].split()[:3] == ["role", "top-1", "%"]
    assert table[2].split()[:5] == ["member", "25.00", "12.50", "8", "4.0"]
    assert table[-2] == "protocol=dense scales=[256, 384] crop=224"
    assert table[-1] == "skipped 1 undecodable images (a.jpg)"
    assert "skipped" not in report.format_table(_result())


def test_json_and_csv_rows(tmp_path):
    json_path, csv_path = report.write_results(_result(), str(tmp_path / "out" / "eval.json"))
    assert csv_path == str(tmp_path / "out" / "eval.csv")
    assert [r["role"] for r in json.loads(open(json_path).read())["rows"]] == [
        "member",
        "ensemble",
    ]
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == report.CSV_FIELDS
    assert rows[0]["scales"] == "256 384"
