"""Every alert entry of the runbook reads the same way, and the runbook's index lists every entry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

RUNBOOK_DIR = Path(__file__).resolve().parents[2] / "docs" / "runbook"
# Pages that are not alert entries: the index itself and the step-by-step procedures.
NOT_ALERT_PAGES = {"index", "procedures"}
PARTS = ("Trigger", "Impact", "Steps", "Settings", "When to escalate")
ANCHOR = re.compile(r'<a id="(runbook-[A-Za-z0-9_-]+)"></a>')
GENERATED_TABLE = re.compile(r"<!-- slo-table:.*?<!-- /slo-table -->", re.DOTALL)


def entries(page: Path) -> dict[str, str]:
    """The entries of a page, by their first anchor: the text from the anchor line to the next one."""
    text = GENERATED_TABLE.sub("", page.read_text(encoding="utf-8"))
    lines = text.splitlines()
    starts = [n for n, line in enumerate(lines) if ANCHOR.match(line)]
    return {
        ANCHOR.match(lines[start])[1]: "\n".join(lines[start:end])
        for start, end in zip(starts, [*starts[1:], len(lines)], strict=True)
    }


def alert_entries() -> list[tuple[str, str, str]]:
    return [
        (page.stem, anchor, text)
        for page in sorted(RUNBOOK_DIR.glob("*.md"))
        if page.stem not in NOT_ALERT_PAGES
        for anchor, text in entries(page).items()
    ]


def has_part(text: str, part: str) -> bool:
    return f"**{part}.**" in text or re.search(rf"^### {part}\b", text, re.MULTILINE) is not None


def test_the_runbook_has_alert_entries():
    assert len(alert_entries()) >= 30


@pytest.mark.parametrize(
    ("page", "anchor", "text"), alert_entries(), ids=lambda v: v if "\n" not in v else ""
)
def test_every_alert_entry_has_trigger_impact_steps_settings_and_escalation(page, anchor, text):
    assert re.search(r"^## ", text, re.MULTILINE), f"{page}.md#{anchor} has no ## heading"
    missing = [part for part in PARTS if not has_part(text, part)]
    assert not missing, f"{page}.md#{anchor} lacks {missing}"
    positions = [text.index(f"**{part}.**") for part in PARTS if f"**{part}.**" in text]
    assert positions == sorted(positions), f"{page}.md#{anchor}: the parts are out of order"
    steps = text.split("**Steps.**", 1)[-1]
    assert re.search(r"^1\. ", steps, re.MULTILINE), f"{page}.md#{anchor}: the steps are not numbered"


def test_every_runbook_anchor_is_listed_in_the_index():
    index = (RUNBOOK_DIR / "index.md").read_text(encoding="utf-8")
    unlisted = [
        f"{page.stem}.md#{anchor}"
        for page in sorted(RUNBOOK_DIR.glob("*.md"))
        if page.stem != "index"
        for anchor in ANCHOR.findall(page.read_text(encoding="utf-8"))
        if f"({page.stem}.md#{anchor})" not in index
    ]
    assert not unlisted, f"not in docs/runbook/index.md: {unlisted}"
