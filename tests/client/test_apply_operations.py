"""`apply` declares trees; rollouts and schedules are operations, and a file naming one is
refused with the command to use instead."""

from __future__ import annotations

import pytest

from charter.cli import treefile
from charter.cli._context import InvalidFile

NODE = "- key: root\n  level: realm\n  title: Root\n  body: The root.\n"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("rollouts: []\ndirectives:\n" + NODE, "charter rollout"),
        ("directives:\n" + NODE + "  rollout: {version: 2, percent: 10}\n", "charter rollout"),
        ("directives:\n" + NODE + "  schedules: []\n", "charter schedule"),
        (
            "directives:\n" + NODE + "  children:\n  - key: t\n    level: team\n    title: T\n"
            "    body: B\n    schedule: {at: now}\n",
            "charter schedule",
        ),
    ],
)
def test_a_file_naming_a_rollout_or_schedule_is_refused(text: str, said: str) -> None:
    with pytest.raises(InvalidFile) as caught:
        treefile.load(text, "tree.yaml")
    message = str(caught.value)
    assert "operations, not declarations" in message
    assert said in message


def test_metadata_may_use_the_words() -> None:
    text = "directives:\n" + NODE + "  metadata: {rollout: planned, schedule: weekly}\n"
    tree = treefile.load(text, "tree.yaml")
    assert tree.directives[0].metadata == {"rollout": "planned", "schedule": "weekly"}
