"""Keep benchmarks/RESULTS.md as one file with one section per benchmark script.

Each script replaces only its own ``## <title>`` section, so running one benchmark never drops
the figures of another.
"""

from __future__ import annotations

from pathlib import Path

CONTENTS = "## Contents"
HISTORY = "## History"


def write_section(path: Path, title: str, body: str) -> None:
    """Put ``## title`` followed by ``body`` into ``path``, replacing a section of that title."""
    heading = f"## {title}"
    sections: list[list[str]] = []
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("## ") or not sections:
                sections.append([])
            sections[-1].append(line)
    new = [heading, "", *body.strip("\n").splitlines(), ""]
    for i, sec in enumerate(sections):
        if sec and sec[0].strip() == heading:
            sections[i] = new
            break
    else:  # a new topic: before the history of superseded figures, and listed in the contents
        at = next((i for i, sec in enumerate(sections) if sec and sec[0].startswith(HISTORY)), len(sections))
        sections.insert(at, new)
        for sec in sections:
            if sec and sec[0].strip() == CONTENTS:
                entry = next((j for j, line in enumerate(sec) if line.startswith("- History")), len(sec))
                sec.insert(entry, f"- {title}")
    blocks = ["\n".join(sec).strip("\n") for sec in sections]
    text = "\n\n".join(b for b in blocks if b) + "\n"
    path.write_text(text)
