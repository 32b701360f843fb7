"""Reward-set selection (top-k, greedy cover/vote, random draws) and the per-group z-score that scales members.

    python -m pytest tests/test_ensembles.py -q
"""

from __future__ import annotations

import pytest

from rewardsearch.rewards.normalize import GroupZScore, group_indices, zscore_groups
from rewardsearch.search.ensembles import greedy_cover, greedy_vote, plan_sets, random_set, top_k

# a and b solve the same two items; c and d each solve what nobody else does
RANKED = [("a", [1, 1, 0, 0, 0]), ("b", [1, 1, 0, 0, 0]), ("c", [0, 0, 1, 0, 0]), ("d", [0, 0, 0, 1, 1])]


def test_top_k_follows_the_rank() -> None:
    assert top_k(RANKED, 2) == ["a", "b"] and top_k(RANKED, 10) == ["a", "b", "c", "d"]


def test_greedy_cover_picks_complementary_members_not_duplicates() -> None:
    # d adds two uncovered items, c one, b none: b (ranked second) is never picked
    assert greedy_cover(RANKED, 10) == ["a", "d", "c"]
    assert greedy_cover(RANKED, 2) == ["a", "d"]


def test_greedy_vote_stops_when_consensus_stops_rising() -> None:
    # {a, d}: every item solved by one of two (>= half) -> 4/5; adding a third needs 2 of 3 -> drops
    assert greedy_vote(RANKED, 10) == ["a", "d"]


def test_greedy_sets_are_padded_to_two_members() -> None:
    flat = [("x", [0, 0]), ("y", [0, 0]), ("z", [0, 0])]
    assert greedy_cover(flat, 10) == ["x", "y"] and greedy_vote(flat, 10) == ["x", "y"]


def test_plan_sets_trains_each_distinct_set_once_and_records_aliases() -> None:
    plans = plan_sets(RANKED, [2, 3, 4, 4], ["cover", "vote"], 10)
    by_name = {name: (members, aliases) for name, members, aliases in plans}
    assert set(by_name) == {"top-2", "top-3", "top-4", "greedy-cover", "greedy-vote"}
    assert by_name["top-4"][1] == ["top-4"]  # the repeated k (capped values collapse the same way)
    assert len({frozenset(m) for m, _ in by_name.values()}) == len(by_name)


def test_random_draw_is_reproducible_and_seeded() -> None:
    pool = [f"c{i}" for i in range(10)]
    assert random_set(pool, 3, 0) == random_set(list(reversed(pool)), 3, 0)
    assert random_set(pool, 3, 0) != random_set(pool, 3, 1) or random_set(pool, 3, 2) != random_set(pool, 3, 0)
    assert len(random_set(pool, 20, 0)) == 10


def test_zscore_within_groups_keeps_none_and_zeroes_flat_groups() -> None:
    assert zscore_groups([1.0, 3.0, None, 5.0, 5.0], [[0, 1, 2], [3, 4]]) == [-1.0, 1.0, None, 0.0, 0.0]


def test_groups_are_consecutive_runs_of_one_prompt_else_by_prompt() -> None:
    assert group_indices(["p", "p", "q", "q"], 2) == [[0, 1], [2, 3]]
    assert group_indices(["p", "q", "p", "q"], 2) == [[0, 2], [1, 3]]


def test_wrapped_rewards_get_equal_say_whatever_their_scale() -> None:
    def big(prompts, completions, **kw):  # noqa: ANN001, ANN003 - TRL's reward shape
        return [100.0 * len(c) for c in completions]

    def small(prompts, completions, **kw):  # noqa: ANN001, ANN003
        return [0.01 * len(c) for c in completions]

    logged: dict[str, float] = {}
    prompts = ["p"] * 4 + ["q"] * 4
    completions = ["a", "bb", "ccc", "dddd"] * 2
    zb, zs = GroupZScore(big, 4), GroupZScore(small, 4)
    out_b = zb(prompts, completions, log_metric=logged.__setitem__)
    out_s = zs(prompts, completions)
    assert out_b == pytest.approx(out_s)  # same ranking inside each group: same z-scores despite 10^4 in scale
    assert zb.__name__ == "big" and logged["rewards/big/raw_mean"] == pytest.approx(250.0)
    assert zb.group_std == pytest.approx(100.0 * 1.118033988749895)


def test_diverse_rounds_takes_the_best_of_every_round() -> None:
    from rewardsearch.search.ensembles import diverse_rounds

    ranked = [("c", [1]), ("a", [1]), ("d", [0]), ("b", [0])]  # best first
    assert diverse_rounds(ranked, {"a": 1, "b": 2, "c": 1, "d": 3}) == ["c", "b", "d"]


def test_later_random_draws_differ_and_draw_one_is_unchanged() -> None:
    pool = [f"c{i}" for i in range(12)]
    first = random_set(pool, 3, 0)
    assert random_set(pool, 3, 0, draw=1) == first
    assert len({tuple(sorted(random_set(pool, 3, 0, draw=d))) for d in (1, 2, 3)}) == 3
