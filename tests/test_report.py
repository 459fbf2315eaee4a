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
