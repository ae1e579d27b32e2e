from __future__ import annotations

from vision.backends.tokens import count_tokens, cut_to_tokens, limit_pieces


def test_count_tokens_counts_cjk_characters_ascii_runs_and_symbols() -> None:
    assert count_tokens("订单号是 2024052011223344。") == 3 + 1 + 1 + 1
    assert count_tokens("The total is $12.50") == 3 + 1 + 1 + 1 + 1
    assert count_tokens("") == 0


def test_cut_to_tokens_keeps_whole_tokens() -> None:
    assert cut_to_tokens("The order number", 2) == "The order"
    assert cut_to_tokens("订单号", 0) == ""
    assert cut_to_tokens("短", 5) == "短"


def test_limit_pieces_cuts_the_piece_that_crosses_the_limit_and_reports_it() -> None:
    assert limit_pieces(["订单号", "是 123。"], 100) == (["订单号", "是 123。"], False)
    assert limit_pieces(["订单号", "是 123。"], 4) == (["订单号", "是"], True)
    assert limit_pieces(["订单号"], 3) == (["订单号"], False)
