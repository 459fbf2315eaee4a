"""The report stitches whichever section pages exist, in pipeline order."""

from __future__ import annotations

from midiml.report.build import build_report


def test_report_includes_present_sections_in_order(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "dataset.json").write_text("{}")
    (tmp_path / "clustering.md").write_text("# Clustering\nNMI 0.9\n")
    (tmp_path / "dataset.md").write_text("# Dataset\n| a |\n")
    md = build_report(tmp_path)
    assert md.index("## Dataset") < md.index("## Clustering")
    assert "NMI 0.9" in md and "`metrics/dataset.json`" in md
    assert "Generators" not in md


def test_benchmark_results_merge_and_render_with_the_gpu_speed_up(tmp_path):
    from midiml.report.benchmarks import record

    metrics, page = tmp_path / "metrics" / "benchmarks.json", tmp_path / "benchmarks.md"

    def timing(device: str, seconds: float) -> dict:
        return {
            "device": device,
            "models": {"ffnn": {"train_seconds": seconds, "epochs": 3, "best_val_loss": 1.0}},
        }

    record("generators_train_cpu", timing("x86_64", 40.0), metrics, page)
    data = record("generators_train_gpu", timing("H100", 8.0), metrics, page)
    assert set(data) == {"generators_train_cpu", "generators_train_gpu"}
    record("generators_gpu_speedup", {"ffnn": 5.0}, metrics, page)
    md = page.read_text()
    assert "| cpu | x86_64 | ffnn | 40.0 | 3 |" in md and "| gpu | H100 | ffnn | 8.0 |" in md
    assert "GPU speed-up: ffnn 5.0×" in md
    assert "Features vs music21" not in md  # sections only for benchmarks that ran
