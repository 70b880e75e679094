"""The history checker on hand-made histories: a clean one passes, and each check can fail."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.faults.history import (
    Composition,
    FeedItem,
    FeedRead,
    Final,
    Layer,
    Operation,
    Outcome,
    PromptRead,
    Read,
    Write,
    check,
    stale_compositions,
)

pytestmark = pytest.mark.faults

D = "dir_d"
CHAINS = {"x": frozenset({D})}

# Acknowledged through a: v2. Refused: w2. Unanswered, and committed: w3 as v3. A 503: w4.
W1 = Write("a", D, 1, "<<w1>>", 1.0, 1.1, Outcome.OK, 200, None, 2, 2)
W2 = Write("b", D, 1, "<<w2>>", 1.0, 1.2, Outcome.CONFLICT, 412)
W3 = Write("a", D, 2, "<<w3>>", 2.0, 2.5, Outcome.INDETERMINATE)
W4 = Write("b", D, 2, "<<w4>>", 2.0, 2.1, Outcome.UNAVAILABLE, 503, "1")
R1 = Read("a", D, 1.2, 1.3, Outcome.OK, 200, None, 2, 2, "<<w1>>")
R2 = Read("b", D, 3.0, 3.1, Outcome.OK, 200, None, 3, 3, "<<w3>>")
P1 = PromptRead("a", "x", 1.5, 1.6, Outcome.OK, 200, None, (Layer(D, 2, 2),), "# D\n\n<<w1>>")
HISTORY: list[Operation] = [W1, W2, W3, W4, R1, R2, P1]
FINAL = Final(D, 3, 3, {1: "<<created>>", 2: "<<w1>>", 3: "<<w3>>"})


def kinds(history: list[Operation], final: Final = FINAL) -> set[str]:
    return check(history, {D: final}, CHAINS).kinds


def test_a_clean_history_passes_and_counts_every_operation() -> None:
    verdict = check(HISTORY, {D: FINAL}, CHAINS)
    assert verdict.anomalies == []
    assert verdict.operations == len(HISTORY)
    assert (verdict.uncertain, verdict.uncertain_won) == (2, 1)


def test_an_unanswered_write_may_also_not_have_happened() -> None:
    final = Final(D, 2, 2, {1: "<<created>>", 2: "<<w1>>"})
    assert kinds([W1, W2, W3, W4, R1, P1], final) == set()


def test_a_lost_acknowledged_write_is_caught() -> None:
    assert "lost-write" in kinds(HISTORY, Final(D, 1, 1, {1: "<<created>>"}))
    assert "lost-write" in kinds(HISTORY, replace(FINAL, bodies={**FINAL.bodies, 2: "<<w3>>"}))


def test_a_gap_in_the_versions_is_caught() -> None:
    final = Final(D, 4, 4, {1: "<<created>>", 2: "<<w1>>", 4: "<<w3>>"})
    assert "version-gap" in kinds(HISTORY, final)
    assert "version-gap" in kinds(HISTORY, replace(FINAL, latest_version=4))


def test_two_acknowledged_winners_of_one_revision_are_caught() -> None:
    twin = replace(W1, server="b", text="<<twin>>", revision=2, version=3)
    final = replace(FINAL, bodies={**FINAL.bodies, 3: "<<twin>>"})
    assert kinds([W1, twin], final) == {"double-win"}


def test_two_unanswered_winners_of_one_revision_are_caught() -> None:
    twin = replace(W3, text="<<w3 twin>>")
    final = Final(D, 4, 4, {**FINAL.bodies, 4: "<<w3 twin>>"})
    assert kinds([W1, W3, twin], final) == {"double-win"}


def test_a_refused_write_that_won_is_caught() -> None:
    final = Final(D, 4, 4, {**FINAL.bodies, 4: "<<w2>>"})
    assert "double-win" in kinds(HISTORY, final)


def test_a_write_applied_twice_is_caught() -> None:
    final = Final(D, 4, 4, {**FINAL.bodies, 4: "<<w3>>"})
    assert "double-win" in kinds(HISTORY, final)


def test_an_answered_revision_that_skips_is_caught() -> None:
    assert "double-win" in kinds([replace(W1, revision=3), *HISTORY[1:]])


def test_a_version_no_write_sent_is_caught() -> None:
    final = Final(D, 4, 4, {**FINAL.bodies, 4: "<<nobody>>"})
    assert "unknown-version" in kinds(HISTORY, final)


def test_a_reused_text_is_a_workload_bug() -> None:
    with pytest.raises(ValueError, match="reused"):
        check([W1, replace(W2, text=W1.text)], {D: FINAL}, CHAINS)


def test_a_directive_read_older_than_an_acknowledged_write_is_caught() -> None:
    # Began after W1 was answered, on any server: the database must already show it.
    old = replace(R1, server="b", revision=1, version=1, text="<<created>>")
    assert kinds([*HISTORY, old]) == {"stale-read"}
    concurrent = replace(old, start=1.05)  # began before W1's answer: either is fine
    assert kinds([*HISTORY, concurrent]) == set()


def test_a_read_of_what_never_existed_is_caught() -> None:
    assert "phantom-read" in kinds([*HISTORY, replace(R2, text="<<w4>>")])
    assert "phantom-read" in kinds([*HISTORY, replace(R2, revision=4, version=4)])
    prompt = replace(P1, text="# D\n\n<<w4>>")
    assert "phantom-read" in kinds([*HISTORY, prompt])


def test_a_stale_prompt_from_the_process_that_wrote_is_caught() -> None:
    stale = replace(P1, layers=(Layer(D, 1, 1),), text="# D\n\n<<created>>")
    assert kinds([*HISTORY, stale]) == {"stale-read"}


def test_another_process_may_lag_within_the_allowance_and_no_more() -> None:
    stale = replace(P1, server="b", layers=(Layer(D, 1, 1),), text="# D\n\n<<created>>")
    verdict = check([*HISTORY, stale], {D: FINAL}, CHAINS, allowance=1.0)
    assert verdict.anomalies == []
    assert verdict.max_lag == pytest.approx(stale.start - W1.end)
    late = replace(stale, start=W1.end + 1.5, end=W1.end + 1.6)
    assert kinds([*HISTORY, late]) == {"stale-read"}


def test_a_prompt_missing_a_layer_is_caught() -> None:
    assert "wrong-layers" in kinds([*HISTORY, replace(P1, layers=())])


def test_a_500_and_a_503_without_retry_after_are_caught() -> None:
    assert kinds([*HISTORY, replace(R1, outcome=Outcome.FAILED, status=500)]) == {"bad-status"}
    quiet = replace(W4, retry_after=None)
    assert kinds([W1, W2, W3, quiet, R1, R2, P1]) == {"no-retry-after"}


def test_a_cache_serving_other_than_a_fresh_composition_is_caught() -> None:
    fresh = Composition("cmp_3", "# D\n\n<<w3>>", (Layer(D, 3, 3),))
    old = Composition("cmp_2", "# D\n\n<<w1>>", (Layer(D, 2, 2),))
    assert stale_compositions({("a", "x"): fresh}, {"x": fresh}, {D: FINAL}) == []
    found = stale_compositions({("a", "x"): fresh, ("b", "x"): old}, {"x": fresh}, {D: FINAL})
    assert [a.detail for a in found] == ["b serves x a stale composition"]
    # The fresh composition itself must layer the active version, with its text.
    behind = stale_compositions({("a", "x"): old}, {"x": old}, {D: FINAL})
    assert [a.kind for a in behind] == ["stale-cache"]


# The feed of HISTORY: the creation, then W1 (revision 2) and W3 (revision 3).
E1 = FeedItem(1, "directive.created", D, 1, "2026-12-02T01:00:00+00:00")
E2 = FeedItem(2, "directive.version_created", D, 2, "2026-12-02T01:00:01+00:00")
E3 = FeedItem(3, "directive.version_created", D, 3, "2026-12-02T01:00:02+00:00")
FEED = [E1, E2, E3]
# One reader: a page, a failed poll, the rest from where it left off.
F1 = FeedRead("a", "r", 0, 1.0, 1.1, Outcome.OK, 200, None, (E1, E2))
F2 = FeedRead("b", "r", 2, 1.2, 1.3, Outcome.INDETERMINATE)
F3 = FeedRead("b", "r", 2, 1.4, 1.5, Outcome.OK, 200, None, (E3,))


def feed_kinds(history: list[Operation], feed: list[FeedItem] = FEED) -> set[str]:
    return check(history, {D: FINAL}, CHAINS, feed=feed).kinds


def test_a_clean_feed_passes() -> None:
    assert feed_kinds([*HISTORY, F1, F2, F3]) == set()


def test_an_event_a_resuming_reader_never_got_is_caught() -> None:
    # The outbox gap: seq 2 committed after 3 was read, and the reader had moved past it.
    skipped = [replace(F1, items=(E1,)), replace(F3, after=1, items=(E3,))]
    assert feed_kinds([*HISTORY, *skipped]) == {"feed-skip"}


def test_an_event_read_twice_is_caught() -> None:
    again = replace(F3, after=1, items=(E2, E3))
    assert feed_kinds([*HISTORY, F1, again]) == {"feed-duplicate"}


def test_an_event_the_feed_does_not_hold_is_caught() -> None:
    other = replace(F3, items=(replace(E3, revision=4),))
    assert "feed-phantom" in feed_kinds([*HISTORY, F1, other])


def test_time_going_back_along_the_feed_is_caught() -> None:
    earlier = replace(E3, occurred_at="2026-12-02T00:59:00+00:00")
    assert feed_kinds(HISTORY, [E1, E2, earlier]) == {"feed-time"}


def test_a_directives_events_out_of_commit_order_are_caught() -> None:
    swapped = [E1, replace(E3, seq=2), replace(E2, seq=3, occurred_at=E3.occurred_at)]
    assert "feed-directive-order" in feed_kinds(HISTORY, swapped)


def test_an_acknowledged_write_without_its_event_is_caught() -> None:
    assert feed_kinds(HISTORY, [E1, E3]) == {"feed-event"}


def test_a_prompt_whose_realm_revision_is_behind_its_layers_is_caught() -> None:
    assert feed_kinds([*HISTORY, replace(P1, realm_revision=2)]) == set()
    assert feed_kinds([*HISTORY, replace(P1, realm_revision=1)]) == {"cursor-behind"}
