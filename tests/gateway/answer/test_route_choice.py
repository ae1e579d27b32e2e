from __future__ import annotations

from pathlib import Path

import pytest
from gateway.answer.route_choice import KeywordTable, forced_route, pick_route
from gateway.errors import InvalidRequestError, ModelNotFoundError, RouteConflictError


@pytest.fixture(scope="module")
def table() -> KeywordTable:
    return KeywordTable.load()


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("为什么这张发票被拒绝了?", "为什么"),
        ("这个报价是否合理", "是否合理"),
        ("我应该怎么做才能退款", "应该怎么做"),
        ("有什么建议吗", "建议"),
        ("Why was this invoice rejected?", "why"),
        ("WHY is it red", "why"),
        ("What should I do next?", "should"),
        ("Any advice?", "advice"),
        ("what if I pay late", "what if"),
        ("How can I   fix this error", "how can i fix"),
        ("Is it reasonable to charge this?", "is it reasonable"),
    ],
)
def test_reasoning_questions_go_cascade_with_their_keyword(
    table: KeywordTable, text: str, keyword: str
) -> None:
    decision = pick_route(text, forced=None, has_images=True, table=table)
    assert (decision.route, decision.reason, decision.keyword) == ("cascade", "keyword", keyword)


@pytest.mark.parametrize(
    "text",
    [
        "订单号是多少?",
        "What is the order number?",
        "my shoulder hurts, what does the label say",  # "should" inside "shoulder"
        "read the reasoning-free text",  # "reason" inside "reasoning"
        "whyever not",  # "why" inside a longer word
        "",
    ],
)
def test_lookup_questions_go_direct(table: KeywordTable, text: str) -> None:
    assert pick_route(text, forced=None, has_images=True, table=table).route == "direct"
    assert pick_route(text, forced=None, has_images=True, table=table).reason == "default"


def test_earliest_keyword_is_reported(table: KeywordTable) -> None:
    assert table.find("Explain why this should fail") == "explain"
    assert table.find("风险是什么, 为什么") == "风险"


def test_text_without_image_goes_to_the_reasoner(table: KeywordTable) -> None:
    decision = pick_route("hello", forced=None, has_images=False, table=table)
    assert (decision.route, decision.reason) == ("cascade", "no_image")


def test_forced_route_wins_over_keywords(table: KeywordTable) -> None:
    decision = pick_route("why?", forced="direct", has_images=True, table=table)
    assert (decision.route, decision.reason, decision.keyword) == ("direct", "forced", None)


@pytest.mark.parametrize(
    ("model", "forces", "expected"),
    [
        ("auto", {}, None),
        ("glm-4.6v-flash-web", {}, None),
        ("direct", {}, "direct"),
        ("cascade", {"route": None}, "cascade"),
        ("auto", {"route": "direct"}, "direct"),
        ("auto", {"X-FlashSight-Route header": "cascade"}, "cascade"),
        ("cascade", {"route": "cascade", "X-FlashSight-Route header": "cascade"}, "cascade"),
    ],
)
def test_forced_route_sources(model: str, forces: dict[str, str | None], expected: str | None) -> None:
    assert forced_route(model, forces) == expected


def test_conflicting_forces_are_a_400_naming_both() -> None:
    with pytest.raises(RouteConflictError, match=r"model=direct.*X-FlashSight-Route header=cascade"):
        forced_route("direct", {"X-FlashSight-Route header": "cascade"})


def test_unknown_route_value_lists_the_routes() -> None:
    with pytest.raises(InvalidRequestError, match="direct, cascade"):
        forced_route("auto", {"X-FlashSight-Route header": "fast"})


def test_unknown_model_is_404_listing_the_ids() -> None:
    with pytest.raises(ModelNotFoundError, match=r"auto, direct, cascade, glm-4\.6v-flash-web") as info:
        forced_route("gpt-4o", {})
    assert info.value.code == "model_not_found"


def test_user_keyword_file_replaces_the_lists(tmp_path: Path) -> None:
    path = tmp_path / "kw.toml"
    path.write_text('[zh]\nkeywords = ["多少"]\n[en]\nkeywords = ["total"]\n', encoding="utf-8")
    table = KeywordTable.load(path)
    assert table.find("总共多少钱") == "多少"
    assert table.find("the Total amount") == "total"
    assert table.find("why") is None


def test_broken_keyword_file_says_what_is_expected(tmp_path: Path) -> None:
    path = tmp_path / "kw.toml"
    path.write_text("[zh\nkeywords = ", encoding="utf-8")
    with pytest.raises(ValueError, match=r"expected \[zh\] and \[en\] tables"):
        KeywordTable.load(path)
