"""Template hygiene that a page walk would only find on the pages it happens to open."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_short_comments_close_on_their_own_line():
    """Django's `{# #}` comment ends at the end of its line: one that runs on is shown to the user as
    text (use {% comment %} for several lines)."""
    offenders = []
    for path in sorted(ROOT.glob("templates/**/*.html")) + sorted(ROOT.glob("apps/**/templates/**/*.html")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            rest = line
            while "{#" in rest:
                rest = rest[rest.index("{#") + 2:]
                if "#}" not in rest:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}")
                    break
                rest = rest[rest.index("#}") + 2:]
    assert offenders == []
