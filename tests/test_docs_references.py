"""Cross-references in the model documentation name sections that exist (a renamed heading left
the model card and docs/compact-model.md pointing at sections that were gone)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMPACT_DOC = REPO / "docs" / "compact-model.md"
CARD = REPO / "hypernst_cli" / "weights" / "embedded" / "compact" / "README.md"

#: a quoted section name: "Capitalised words ..." (at least 7 characters)
_QUOTED = re.compile(r'"([A-Z][^"\n]{6,})"')


def _anchors(doc: Path) -> list[str]:
    """What a reference can name: the headings, and the bold lead-ins of paragraphs or items."""
    text = doc.read_text(encoding="utf-8")
    headings = [re.sub(r"^#+\s*", "", line).strip() for line in text.splitlines()
                if line.startswith("#")]
    bold = [b.strip().rstrip(".:") for b in re.findall(r"\*\*([^*\n]+)\*\*", text)]
    return headings + bold


def _unknown(text: str, anchors: list[str]) -> list[str]:
    # a heading may go on past the quoted words ("The palette by region (2026-12-03; ...)")
    return [q for q in _QUOTED.findall(" ".join(text.split()))
            if not any(a.startswith(q) for a in anchors)]


def test_the_model_card_names_sections_of_the_compact_model_doc_that_exist():
    assert _unknown(CARD.read_text(encoding="utf-8"), _anchors(COMPACT_DOC)) == []


def test_the_compact_model_docs_see_references_name_its_own_sections():
    text = COMPACT_DOC.read_text(encoding="utf-8")
    # the references to its own sections: (see "X" below/above); other files' sections are
    # named with the file ("`benchmarks/RESULTS.md`, "Palette ceiling"")
    refs = re.findall(r'see ((?:"[^"]+"[^"()]*?)+)(?:below|above)', " ".join(text.split()))
    assert refs, "no see-references found: the pattern no longer matches the doc"
    assert _unknown(" ".join(refs), _anchors(COMPACT_DOC)) == []
