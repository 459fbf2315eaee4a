"""DVC stage `reencoded_test_songs`: the genre test songs re-encoded by every perturbation
(feature rows and notes) -> data/reencoded_test_songs/; every model is scored on them."""

import time
from pathlib import Path

from midiml.classify.runs import robustness_songs, write_test_copies
from midiml.classify.tables import read_notes, read_tables
from midiml.config import load_params
from midiml.io import atomic_dir


def main() -> None:
    start = time.perf_counter()
    params = load_params()
    files, splits, _, _ = read_tables(with_notes=False)
    notes = read_notes(songs=robustness_songs(params, files, splits))  # only theirs
    with atomic_dir(Path("data/reencoded_test_songs")) as tmp:
        write_test_copies(params, files, splits, notes, tmp)
    print(f"reencoded_test_songs: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
