"""The README is a newcomer's page: short, the two commands, links to docs/ for the rest."""

from __future__ import annotations

import re

from tests.conftest import REPO


def test_readme_is_short_and_starts_with_the_two_commands():
    text = (REPO / "README.md").read_text()
    assert len(text.split()) < 1000
    two = text[text.index("## Two commands") : text.index("## What you get")]
    assert "make repro" in two and "midiml continue song.mid" in two
    assert "dvc exp run -S model.loss.alpha=1.5" in text  # the design card's command


def test_docs_pages_link_back_and_resolve():
    """Every docs page links back to the README; links between pages of this repository
    resolve, except to pages that are not written yet (listed in the README's table)."""
    readme = (REPO / "README.md").read_text()
    for page in sorted((REPO / "docs").glob("*.md")):
        text = page.read_text()
        assert "](../README.md)" in text, page.name
        assert f"](docs/{page.name})" in readme, f"README does not link {page.name}"
        for link in re.findall(r"\]\(([\w.-]+\.md)", text):
            assert (REPO / "docs" / link).exists() or f"docs/{link}" in readme, (page, link)
