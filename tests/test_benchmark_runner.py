"""benchmarks/run.py: figures gathered under the documented keys, verdicts, README rewrite."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
import run as runner  # noqa: E402

RAW = {
    "prelu_overhead": {"ours_vs_relu": 1.02, "keras_prelu_vs_relu": 1.04,
                       "ours_vs_keras_prelu": 0.98, "ours_bf16_vs_relu_bf16": 1.01,
                       "command": "prelu_overhead.py"},
    "training": {"model_a_vs_vgg19_flops": 0.9, "model_a_mfu": 0.6, "model_a_bf16_mfu": 0.5,
                 "model_a_bf16_speedup": 1.7, "vgg19_bf16_speedup": 1.8,
                 "model_a_bf16_vs_keras_dense": 0.95,
                 "model_a_bf16_caffe_sgd_vs_keras_sgd": 0.9,
                 "command": "python benchmarks/training.py"},
    "input_pipeline": {"fused_speedup": 1.18, "images_per_second_per_core": {"fused": 700.0},
                       "fused_vs_keras_layers": 2.4, "integer_fast_vs_default": 1.05,
                       "command": "python benchmarks/input_pipeline.py"},
    "evaluation": {"dense_vs_crops": {"speedup": 30.0},
                   "latency_batch1": {"serving_default(jpeg bytes)": {"median_ms": 11.0,
                                                                      "p99_ms": 17.0}},
                   "large_jpeg": {"vs_decode": {"serving_default, model_tiny": 0.4}},
                   "refuse_20000px_jpeg": {"seconds": 0.05, "max_rss_growth_mb": 60.0},
                   "command": "python benchmarks/evaluation.py"},
}  # fmt: skip


def test_summary_has_every_documented_key_and_honest_verdicts():
    result = runner.summarize(RAW, quick=True)
    for key, *_ in runner.KEYS:
        group, name = key.split(".")
        assert isinstance(result[group][name], float), key
    verdicts = {row["key"]: row["met"] for row in result["targets"]}
    assert verdicts["prelu_overhead.ours_vs_relu"] is True
    assert verdicts["training.model_a_vs_vgg19_flops"] is False  # 0.9 < 0.95: reported, not hidden
    assert verdicts["input_pipeline.fused_vs_unfused"] is None  # the 1.3 target is retired
    assert verdicts["input_pipeline.fused_vs_keras_layers"] is True
    assert verdicts["training.model_a_bf16_speedup"] is False  # 1.7 < VGG19's 1.8
    assert verdicts["serving.latency_ms_p50"] is None
    assert verdicts["serving.large_jpeg_vs_decode"] is True
    assert {"cpu", "amx", "cores", "keras", "backend"} <= set(result["machine"])
    assert all(row["cpu"] == result["machine"]["cpu"] for row in result["targets"])


def test_markdown_and_readme_section(tmp_path):
    table = runner.markdown(runner.summarize(RAW, quick=True))
    assert "| `training.model_a_vs_vgg19_flops` | 0.900 | - | >= 0.95 | **no** |" in table
    assert "AMX" in table.splitlines()[0]
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{runner.START}\nold\n{runner.END}\n\n## Tests\n")
    runner.update_readme(table, str(readme))
    text = readme.read_text()
    assert "old" not in text and table in text and text.endswith("## Tests\n")
    readme.write_text("# no markers\n")
    with pytest.raises(SystemExit, match="no <!-- performance:start -->"):
        runner.update_readme(table, str(readme))


def test_targets_are_one_table_that_run_reads():
    keys = {key for key, _ in runner.KEYS}
    # Every target but the one of the script run on its own is a figure run.py reports.
    assert set(runner.TARGETS) - keys == {"jpeg_downscale_accuracy.max_difference_points"}
    assert str(runner.TARGETS["input_pipeline.images_per_sec_per_core"]) == ">= 250"
    assert runner.describe("prelu_overhead.keras_prelu_vs_relu") == ">= ours"
    assert runner.describe("training.model_a_mfu") == "-"
    assert runner.describe("training.model_a_bf16_speedup") == ">= `training.vgg19_bf16_speedup`"
    assert runner.describe("input_pipeline.fused_vs_unfused").endswith("retired)")
    assert runner.TARGETS["serving.large_jpeg_vs_decode"].met(0.6)
    assert not runner.TARGETS["evaluation.dense_vs_crops"].met(4.9)


def test_readme_table_comes_from_the_newest_run_py_result(tmp_path, monkeypatch):
    import json

    older = runner.summarize(RAW, quick=False)
    older["date"] = "2026-11-26T16:39:58+00:00"
    newer = dict(older, date="2026-12-03T10:00:00+00:00", quick=True)
    # Named and timed to mislead: the newest file by name and time is another benchmark's.
    for name, payload in [
        ("2026-12-03-vm.json", newer),
        ("2026-12-04-vm.json", older),
        ("2026-12-05-gpu_jax.json", {"benchmark": "gpu_jax", "steps": {}}),
    ]:
        (tmp_path / name).write_text(json.dumps(payload))
    monkeypatch.setattr(runner, "RESULTS", str(tmp_path))
    assert runner.latest_result()["date"] == newer["date"]
    assert "(--quick)" in runner.markdown(runner.latest_result())
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(runner, "RESULTS", str(empty))
    with pytest.raises(SystemExit, match="No run.py results"):
        runner.latest_result()


def test_a_second_run_on_the_same_day_keeps_the_first(tmp_path):
    assert runner.result_stem(str(tmp_path), "2026-12-04", "vm") == "2026-12-04-vm"
    (tmp_path / "2026-12-04-vm.json").write_text("{}")
    assert runner.result_stem(str(tmp_path), "2026-12-04", "vm") == "2026-12-04-vm-2"
    (tmp_path / "2026-12-04-vm-2.json").write_text("{}")
    assert runner.result_stem(str(tmp_path), "2026-12-04", "vm") == "2026-12-04-vm-3"
