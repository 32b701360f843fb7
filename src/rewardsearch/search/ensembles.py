"""Which reward sets to train together: top-k, greedy forward selection, random draws.

Pure functions over the dev ranking and the candidates' per-item dev correctness vectors (0/1 per item, the same
items for every candidate); the final stage (`search/finals.py`) turns their output into trained arms.

- `top_k`: the k best candidates by dev rank.
- `greedy_cover` (complementarity): start from the best; add the candidate that solves the most dev items no
  member solves yet; stop when nobody adds an item or the set is full.
- `greedy_vote` (consensus, Caruana-style forward selection): start from the best; add the candidate that most
  raises the share of items solved by at least half of the members; stop when nothing raises it.
Both greedy sets get at least two members: when no candidate improves the criterion after the first, the next by
rank joins, so the set is still an ensemble. Ties go to the better-ranked candidate.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import numpy as np

RankedVectors = Sequence[tuple[str, Sequence[int]]]  # (candidate id, dev correctness), best rank first


def top_k(ranked: RankedVectors, k: int) -> list[str]:
    return [cid for cid, _ in ranked[:k]]


def _pad_to_two(chosen: list[int], n: int) -> list[int]:
    if len(chosen) < 2:
        nxt = next((i for i in range(n) if i not in chosen), None)
        if nxt is not None:
            chosen.append(nxt)
    return chosen


def greedy_cover(ranked: RankedVectors, max_members: int) -> list[str]:
    """Forward selection maximizing the dev items solved by at least one member (see module docstring)."""
    if not ranked:
        return []
    vs = np.asarray([list(v) for _, v in ranked], dtype=bool)  # (candidates, items)
    chosen = [0]
    covered = vs[0].copy()
    while len(chosen) < max_members:
        gains = (vs & ~covered).sum(axis=1)
        gains[chosen] = -1
        best = int(np.argmax(gains))  # argmax takes the first maximum: the better rank wins ties
        if gains[best] <= 0:
            break
        chosen.append(best)
        covered |= vs[best]
    return [ranked[i][0] for i in _pad_to_two(chosen, len(ranked))]


def _consensus(vs: np.ndarray) -> float:
    """Share of items solved by at least half of the rows of `vs` (members, items)."""
    return float(np.mean(vs.sum(axis=0) * 2 >= vs.shape[0]))


def greedy_vote(ranked: RankedVectors, max_members: int) -> list[str]:
    """Forward selection maximizing the share of dev items at least half the members solve."""
    if not ranked:
        return []
    vs = np.asarray([list(v) for _, v in ranked], dtype=bool)
    chosen = [0]
    score = _consensus(vs[chosen])
    while len(chosen) < max_members:
        best, best_score = None, score
        for i in range(len(ranked)):
            if i in chosen:
                continue
            s = _consensus(vs[chosen + [i]])
            if s > best_score:
                best, best_score = i, s
        if best is None:
            break
        chosen.append(best)
        score = best_score
    return [ranked[i][0] for i in _pad_to_two(chosen, len(ranked))]


def diverse_rounds(ranked: RankedVectors, rounds: dict[str, int]) -> list[str]:
    """The best-ranked candidate of every search round, in round order (the paper's diverse-rounds set)."""
    best: dict[int, str] = {}
    for cid, _ in ranked:
        best.setdefault(rounds[cid], cid)
    return [best[r] for r in sorted(best)]


def random_set(pool: Sequence[str], k: int, seed: int, draw: int = 1) -> list[str]:
    """k candidates drawn without replacement from `pool`, reproducibly from (seed, k, pool, draw); draw 1 is the
    draw single-draw runs made (its tag has no draw number), so their stored draw stays valid."""
    suffix = "" if draw == 1 else f"|draw{draw}"
    tag = hashlib.sha256(f"random-k|{seed}|{k}|{','.join(sorted(pool))}{suffix}".encode()).hexdigest()
    rng = random.Random(tag)
    return rng.sample(sorted(pool), min(k, len(pool)))


def plan_sets(
    ranked: RankedVectors, ks: Sequence[int], greedy: Sequence[str], max_members: int
) -> list[tuple[str, list[str], list[str]]]:
    """[(strategy, members, aliases)]: one entry per distinct member set, named after the first strategy that
    built it; later strategies building the same set become its aliases. Sets of fewer than two are dropped."""
    built: list[tuple[str, list[str]]] = []
    for k in ks:
        built.append((f"top-{k}", top_k(ranked, k)))
    for g in greedy:
        fn = {"cover": greedy_cover, "vote": greedy_vote}[g]
        built.append((f"greedy-{g}", fn(ranked, max_members)))
    out: list[tuple[str, list[str], list[str]]] = []
    for strategy, members in built:
        if len(members) < 2:
            continue
        same = next((o for o in out if set(o[1]) == set(members)), None)
        if same is not None:
            same[2].append(strategy)
        else:
            out.append((strategy, members, []))
    return out
