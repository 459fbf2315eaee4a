"""The made-up loops: synthetic check sources (``data.check_sources``), deterministic,
readable like any user's file, unlike the lo-fi source, never ingested for training."""

from __future__ import annotations

import pytest

from midiml.classify.tables import check_sources_genre, synthetic_check_sources
from midiml.config import load_params
from midiml.data.download import get_source
from midiml.data.midi import read_user_file
from midiml.data.sources import Source, check_sources_from_params, sources_from_params
from midiml.data.synthetic import STYLES, write_loop_pack, write_synthetic
from midiml.report.classifiers import render_check_sources


@pytest.mark.parametrize("style", STYLES)
def test_a_loop_pack_is_the_same_for_the_same_seed_and_reads_cleanly(tmp_path, style):
    first = write_loop_pack(tmp_path / "a", style, n=6, seed=1)
    again = write_loop_pack(tmp_path / "b", style, n=6, seed=1)
    other = write_loop_pack(tmp_path / "c", style, n=6, seed=2)
    assert [p.name for p in first] == [p.name for p in again]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, again, strict=True))
    assert [p.read_bytes() for p in first] != [p.read_bytes() for p in other]
    lengths, tracks, tempos = [], set(), set()
    for path in first:
        parsed = read_user_file(path)  # the checks every command applies
        notes = parsed.notes
        lengths.append(float((notes["onset_s"] + notes["duration_s"]).max()))
        tracks.add(int(parsed.info["n_tracks"]))
        tempos.add(round(float(parsed.info["qpm_mean"])))
        assert notes["velocity"].nunique() > 5  # human velocities, not one value
    # unlike the lo-fi source (11.3 s, 2 tracks, 85 bpm): other lengths, layouts, tempos
    assert min(lengths) >= 7 and len({round(x) for x in lengths}) > 2
    assert len(tracks) > 1 and len(tempos) > 1


def test_unknown_style_is_refused(tmp_path):
    with pytest.raises(ValueError, match="style"):
        write_loop_pack(tmp_path, "polka")


def test_the_report_section_lists_each_check_source_under_a_heading_from_config():
    """One name (``expected_genre_share``, the genre beside it) and no genre in the page's
    code: the heading names the config's sources and genre."""
    page = render_check_sources(
        {
            "held": {
                "n": 4,
                "genre": "ambient",
                "expected_genre_share": 0.75,
                "predicted": {"ambient": 3, "videogame": 1},
            }
        }
    )
    assert page.startswith("### Check sources held (genre ambient)")
    assert "| held | 4 | ambient | 0.750 | ambient 3, videogame 1 |" in page
    assert "lo-fi" not in page and "lofi" not in page
    assert "Skipped: no models" in render_check_sources({"skipped": "no models"})
    assert render_check_sources({}) == ""


def test_a_synthetic_source_writes_its_generators_files_under_its_genre(tmp_path):
    """``kind: synthetic``: the generator (``_target_``) writes the files into
    ``<folder>/<genre>/``; ``seed`` draws another pack of the same source."""
    cfg = {
        "kind": "synthetic",
        "genre": "lofi",
        "generator": {
            "_target_": "midiml.data.synthetic.write_loop_pack",
            "style": "keys",
            "n": 3,
            "seed": 4,
        },
    }
    source = Source.from_config("keys", cfg)
    assert source.labels == "none" and source.genre_of("lofi/x.mid") == "lofi"
    paths = write_synthetic(source, tmp_path / "src")
    direct = write_loop_pack(tmp_path / "direct", "keys", n=3, seed=4)
    assert [p.parent for p in paths] == [tmp_path / "src" / "lofi"] * 3
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in direct]
    other = write_synthetic(source, tmp_path / "other", seed=5)
    assert [p.read_bytes() for p in other] == [
        p.read_bytes() for p in write_loop_pack(tmp_path / "d5", "keys", n=3, seed=5)
    ]
    with pytest.raises(ValueError, match="synthetic"):
        write_synthetic(Source.from_config("x", {"kind": "folder", "path": "x"}), tmp_path)


def test_the_made_up_loops_are_check_sources_of_one_genre_never_ingested():
    """The loops are configured under ``data.check_sources`` (the genre is the config's, none
    in the library code), apart from ``data.sources``, which ingest trains on."""
    params = load_params()
    checks = check_sources_from_params(params)
    assert set(checks) == set(STYLES) and {s.kind for s in checks.values()} == {"synthetic"}
    assert synthetic_check_sources(params) == checks
    assert check_sources_genre(params) == "lofi"
    assert not set(checks) & set(sources_from_params(params))
    assert "made_up_loops" not in params.classifier


def test_the_small_profile_keeps_the_check_sources():
    """CI's ``data=small`` inherits the full profile's check sources; the offline corpus
    profile has none (its genres are not lo-fi)."""
    from omegaconf import OmegaConf

    from midiml.config import compose_defaults

    def checks(overrides: list[str]) -> dict[str, Source]:
        return check_sources_from_params(OmegaConf.create(compose_defaults(overrides)))

    assert checks(["data=small"]) == check_sources_from_params(load_params())
    assert checks(["data=corpus"]) == checks(["data=folder"]) == {}


def test_a_check_source_needs_its_genre():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"data": {"check_sources": {"x": {"kind": "folder", "path": "x"}}}})
    with pytest.raises(ValueError, match="genre"):
        check_sources_from_params(cfg)


def test_a_check_source_is_obtained_like_any_source(tmp_path):
    """``get_source`` (the download stage's one path for every kind) writes a synthetic
    check source's files as the evaluate stage scores them: ``<folder>/<genre>/``."""
    source = check_sources_from_params(load_params())["held"]
    report = get_source(source, tmp_path / "held")
    assert report["extracted"] == 36 and not report["refused"]
    files = sorted((tmp_path / "held" / "lofi").glob("*.mid"))
    direct = write_loop_pack(tmp_path / "direct", "held", n=36, seed=0)
    assert [p.read_bytes() for p in files] == [p.read_bytes() for p in sorted(direct)]


def test_a_synthetic_source_under_data_sources_is_found_by_ingest_with_its_genre(tmp_path):
    """As the download stage writes it (``data/raw/<name>/``), ingest finds every file of a
    synthetic source with the config's genre, like any other source's."""
    from midiml.data.ingest import find_files

    cfg = {
        "kind": "synthetic",
        "genre": "lofi",
        "generator": {"_target_": "midiml.data.synthetic.write_loop_pack", "style": "held", "n": 2},
    }
    source = Source.from_config("my_loops", cfg)
    written = write_synthetic(source, tmp_path / "my_loops")
    found = find_files(tmp_path, [source])
    assert [f.genre for f in found] == ["lofi", "lofi"]
    assert sorted(f.path for f in found) == sorted(written)
