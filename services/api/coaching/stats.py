"""Leave-one-out peer statistics of SPEC 5.2 for every rep of every group at once (numpy, pure).

For one metric, a qualified rep's peers are the qualified values of its group but its own. The
qualified values are sorted by (group, value) into one array in which each group is a segment;
removing one element from a sorted segment shifts the indices above it by one, so each rep's peer
median, rank and count are index arithmetic. The MAD needs the sorted deviations from the rep's
peer median, which takes at most three distinct values per group: those deviation segments are
built and sorted the same way. Every number is the same IEEE arithmetic, in the same order, as the
definition written per rep, so the results are identical to it, not merely close. The cost does not
depend on how many groups there are.

Arrays are indexed by rep; NaN stands for "no value" (null in the answer).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

MAD_TO_SIGMA = 1.4826  # makes the MAD a consistent estimate of sigma for normal data
MIN_PEERS_FOR_Z = 5


@dataclass(frozen=True)
class MetricStandings:
    """Every rep's standing on one metric: how many peers, their median, the rep's percentile among
    them, its gap to the median and its robust z-score (NaN where the answer has null)."""

    peers: Ints
    median: Floats
    percentile: Floats
    gap: Floats
    z: Floats


@dataclass(frozen=True)
class _Segments:
    """Values sorted by (segment, value): segment s holds `values[start[s]:start[s] + size[s]]`.

    `keys` are exact integer sort keys (segment x distinct values + the value's rank), so that a
    value's position within its segment is a `searchsorted` on them.
    """

    values: Floats
    keys: Ints
    ranks: Floats  # the distinct values, sorted: a value's rank is its index here
    width: int

    @classmethod
    def of(cls, values: Floats, segment: Ints) -> _Segments:
        ranks = np.unique(values)
        width = len(ranks) + 1
        keys = segment * width + np.searchsorted(ranks, values)
        order = np.argsort(keys, kind="stable")
        return cls(values[order], keys[order], ranks, width)

    def bounds(self, segment: Ints) -> tuple[Ints, Ints]:
        start = np.searchsorted(self.keys, segment * self.width, side="left")
        end = np.searchsorted(self.keys, (segment + 1) * self.width, side="left")
        return start, end - start

    def below(self, segment: Ints, values: Floats, side: Literal["left", "right"]) -> Ints:
        """Where in the sorted array each value's segment has its first element not below (side
        "right": above) the value: the segment's start plus how many of its values are below (at
        most) it."""
        rank = np.searchsorted(self.ranks, values, side=side)
        position: Ints = np.searchsorted(self.keys, segment * self.width + rank, side="left")
        return position

    def median_without(self, start: Ints, count: Ints, skip: Ints) -> Floats:
        """Per entry, the median of its segment (from `start`) without the element at offset
        `skip` (the segment's size: none left out), `count` being what remains. Entries with
        `count` 0 are meaningless."""
        lo, hi = (count - 1) // 2, count // 2
        last = len(self.values) - 1
        lo = np.minimum(np.maximum(start + lo + (lo >= skip), 0), last)
        hi = np.minimum(start + hi + (hi >= skip), last)
        result: Floats = (self.values[lo] + self.values[hi]) / 2
        return result


def standings(values: Floats, qualified: Bools, groups: Ints | None = None) -> MetricStandings:
    """One metric's standings. `qualified[i]`: rep i has a value and enough sample to be a peer.

    `groups` (one label >= 0 per rep) restricts each rep's peers to its own group; None: one group.
    """
    n = len(values)
    out = MetricStandings(
        peers=np.zeros(n, np.int64),
        median=np.full(n, np.nan),
        percentile=np.full(n, np.nan),
        gap=np.full(n, np.nan),
        z=np.full(n, np.nan),
    )
    if not qualified.any():
        return out  # nobody is anybody's peer
    group = np.zeros(n, np.int64) if groups is None else groups
    pool = _Segments.of(values[qualified], group[qualified])
    start, size = pool.bounds(group)
    lo = pool.below(group, values, "left") - start
    # Each rep leaves out one copy of its own value when it is a peer itself.
    peer = qualified.astype(np.int64)
    count = size - peer
    has_peers = count > 0
    median = np.where(has_peers, pool.median_without(start, count, np.where(qualified, lo, size)), np.nan)
    out.peers[:] = count
    out.median[:] = median

    ranked = ~np.isnan(values) & has_peers
    equal = pool.below(group, values, "right") - start - lo - peer
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        percentile = 100.0 * (lo + 0.5 * equal) / count
        gap = (values - median) / median
    out.percentile[:] = np.where(ranked, percentile, np.nan)
    out.gap[:] = np.where(ranked & (median != 0), gap, np.nan)

    scored = np.flatnonzero(qualified & (count >= MIN_PEERS_FOR_Z))
    if len(scored):
        out.z[scored] = _z(pool, values[scored], group[scored], start[scored], size[scored], median[scored])
    return out


def _z(pool: _Segments, values: Floats, group: Ints, start: Ints, size: Ints, center: Floats) -> Floats:
    """z-scores of qualified reps with enough peers: the MAD is the median absolute deviation of
    the peers from `center`, the rep's peer median."""
    # One deviation segment per distinct (group, center) of these reps.
    centers = np.unique(center)
    pair_keys, first, pair = np.unique(
        group * len(centers) + np.searchsorted(centers, center), return_index=True, return_inverse=True
    )
    pair_start, pair_size, pair_center = start[first], size[first], center[first]
    offsets = np.concatenate(([0], np.cumsum(pair_size)[:-1]))
    owner = np.repeat(np.arange(len(pair_keys)), pair_size)
    source = np.arange(int(pair_size.sum())) - np.repeat(offsets - pair_start, pair_size)
    deviations = _Segments.of(np.abs(pool.values[source] - pair_center[owner]), owner)
    mine = pair.astype(np.int64)
    own = deviations.below(mine, np.abs(values - center), "left") - offsets[mine]
    mad = deviations.median_without(offsets[mine], size - 1, own)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = (values - center) / (MAD_TO_SIGMA * mad)
    z: Floats = np.where(mad > 0, ratio, np.nan)
    return z


def against(value: float, scored: bool, peers: Floats) -> tuple[int, float, float, float, float]:
    """One rep's standing against a fixed set of peer values (qualified, without NaN, not holding
    the rep's own): peers, median, percentile, gap and z, NaN where the answer has null. The same
    arithmetic as `standings`, so the same numbers as the definition; `scored` is whether the rep
    qualifies for a z itself."""
    n = len(peers)
    if n == 0:
        return 0, math.nan, math.nan, math.nan, math.nan
    ordered = np.sort(peers)
    median = float((ordered[(n - 1) // 2] + ordered[n // 2]) / 2)
    if math.isnan(value):
        return n, median, math.nan, math.nan, math.nan
    lo = int(np.searchsorted(ordered, value, side="left"))
    equal = int(np.searchsorted(ordered, value, side="right")) - lo
    percentile = 100.0 * (lo + 0.5 * equal) / n
    gap = (value - median) / median if median != 0 else math.nan
    z = math.nan
    if scored and n >= MIN_PEERS_FOR_Z:
        deviations = np.sort(np.abs(ordered - median))
        mad = float((deviations[(n - 1) // 2] + deviations[n // 2]) / 2)
        if mad > 0:
            z = (value - median) / (MAD_TO_SIGMA * mad)
    return n, median, percentile, gap, z


def nullable(value: float) -> float | None:
    """A number of the answer: None where the arrays hold NaN."""
    number = float(value)
    return None if math.isnan(number) else number


def focus(scores: Floats, threshold: float, most: int) -> list[list[int]]:
    """Per rep (row), the columns whose score is at most `threshold`, lowest first (ties: the
    earlier column), at most `most` of them. NaN scores never count."""
    candidates = np.where(scores <= threshold, scores, np.inf)
    order = np.argsort(candidates, axis=1, kind="stable")[:, :most]
    picked = np.take_along_axis(candidates, order, axis=1) < np.inf
    return [
        [int(c) for c, ok in zip(row, keep, strict=True) if ok]
        for row, keep in zip(order, picked, strict=True)
    ]


def floats(values: Iterable[float | int | None]) -> Floats:
    return np.fromiter((np.nan if v is None else v for v in values), dtype=np.float64)


def rate(numerator: Floats, denominator: Floats) -> Floats:
    """`kit.sums.ratio` of the reps' floats: NaN where the denominator is 0 or the quotient is not
    finite."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        quotient = numerator / denominator
    return finite(np.where(denominator == 0, np.nan, quotient))


def finite(values: Floats) -> Floats:
    finite: Floats = np.where(np.isfinite(values), values, np.nan)
    return finite
