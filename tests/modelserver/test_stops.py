"""Stop-string matching over text that arrives in arbitrary pieces."""

from __future__ import annotations

from modelserver.stops import StopMatcher


def feed_all(matcher: StopMatcher, pieces: list[str]) -> list[str]:
    return [matcher.feed(p) for p in pieces]


def test_partial_match_is_held_then_released() -> None:
    matcher = StopMatcher(["END"])
    assert feed_all(matcher, ["abc E", "N", "x"]) == ["abc ", "", "ENx"]
    assert not matcher.matched


def test_match_across_three_pieces_truncates() -> None:
    matcher = StopMatcher(["END"])
    assert feed_all(matcher, ["ok E", "N", "D tail", "more"]) == ["ok ", "", "", ""]
    assert matcher.matched and matcher.flush() == ""


def test_flush_releases_a_held_tail_at_the_end() -> None:
    matcher = StopMatcher(["END"])
    assert matcher.feed("the EN") == "the "
    assert matcher.flush() == "EN"


def test_no_stops_passes_everything() -> None:
    matcher = StopMatcher([])
    assert feed_all(matcher, ["a", "b"]) == ["a", "b"]


def test_overlapping_prefixes_hold_the_longest_possible_match() -> None:
    matcher = StopMatcher(["aab"])
    assert matcher.feed("xaa") == "x"
    assert matcher.feed("a") == "a"  # "aaa": only the last "aa" can still start "aab"
    assert matcher.feed("b") == ""
    assert matcher.matched
