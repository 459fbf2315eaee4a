"""benchmarks/pipeline_time.py: the stage table adds up to the run and names every stage."""

from midiml.report.benchmarks import render
from tests.conftest import load_script

pipeline_time = load_script("benchmarks/pipeline_time.py")


def test_each_stage_runs_until_the_next_one_starts() -> None:
    lines = [
        (0.0, "Verifying data sources\n"),
        (1.0, "Running stage 'ingest':\n"),
        (3.0, "> sh stages/run.sh stages/ingest.py\n"),
        (11.0, "Running stage 'train_generator@markov':\n"),
        (12.5, "Updating lock file 'dvc.lock'\n"),
    ]
    stages = pipeline_time.time_stages(lines, end=14.0)
    assert stages == {"ingest": 10.0, "train_generator@markov": 3.0}


def test_no_stage_ran_gives_an_empty_table() -> None:
    assert pipeline_time.time_stages([(0.0, "Stage 'ingest' didn't change, skipping\n")], 1.0) == {}


def test_the_table_reaches_the_benchmarks_page() -> None:
    page = render(
        {
            "pipeline": {
                "command": "dvc repro -f",
                "total_s": 12.0,
                "stages_s": {"ingest": 10.0, "report": 2.0},
                "machine": "x86_64, 2 cores",
            }
        }
    )
    assert "| ingest | 10.0 |" in page and "**12.0 s** in all" in page


def test_the_page_lists_stages_in_run_order_after_the_json_sorted_them(tmp_path) -> None:
    """benchmarks.json is written with sorted keys; the page keeps the order the stages ran."""
    from midiml.report.benchmarks import record

    stages = {"ingest": 10.0, "cluster": 3.0, "report": 2.0}
    result = {"command": "dvc repro -f", "total_s": 15.0, "stages_s": stages, "machine": "x"}
    result["stage_order"] = list(stages)
    metrics, page = tmp_path / "b.json", tmp_path / "b.md"
    record("pipeline", result, metrics, page)
    record("other", {"x": 1}, metrics, page)  # a later benchmark re-reads the sorted file
    text = page.read_text()
    assert text.index("| ingest |") < text.index("| cluster |") < text.index("| report |")
