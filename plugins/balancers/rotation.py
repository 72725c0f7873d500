"""Smooth weighted round robin: the rotation the round robin balancers walk, and the
order LeastConnections breaks its ties in."""

from __future__ import annotations

from functools import reduce
from math import gcd
from typing import Iterable, Iterator, Sequence

from .base import Server

# Periods x servers up to this many are tabulated once instead of walked per request.
PRECOMPUTE_LIMIT = 4096
# Rotations kept for the sets of available servers met lately (see Rotations).
REMEMBERED_ROTATIONS = 32


def smooth_sequence(weights: list[int]) -> list[int]:
    """One period of nginx's smooth weighted round robin, as server positions.

    Each step adds every weight to its server's score, picks the highest score (the
    first on a tie) and takes the total weight off the winner. Equal weights give plain
    rotation; weights 5, 1, 1 give 0 0 1 0 2 0 0. Weights are divided by their greatest
    common divisor first, which leaves the order unchanged and the period shortest.
    """
    divisor = reduce(gcd, weights)
    weights = [weight // divisor for weight in weights]
    total = sum(weights)
    scores = [0] * len(weights)
    sequence = []
    for _ in range(total):
        best = 0
        for position, weight in enumerate(weights):
            scores[position] += weight
            if scores[position] > scores[best]:
                best = position
        scores[best] -= total
        sequence.append(best)
    return sequence


class Rotation:
    """The servers in smooth weighted round robin order, read from any turn onwards."""

    def __init__(self, servers: Sequence[Server]) -> None:
        self.servers = tuple(servers)
        self.sequence = smooth_sequence([server.weight for server in servers])
        # The order from each turn of the period, ready when that table stays small.
        self.orders = None
        if len(self.sequence) * len(servers) <= PRECOMPUTE_LIMIT:
            self.orders = [tuple(self._walk(start)) for start in range(len(self.sequence))]

    def __len__(self) -> int:
        """The period: the number of turns after which the order repeats."""
        return len(self.sequence)

    def order(self, turn: int) -> Iterable[Server]:
        """The server of ``turn``, then the other servers as the rotation reaches them."""
        if self.orders is not None:
            return self.orders[turn % len(self.orders)]
        return self._walk(turn)

    def _walk(self, turn: int) -> Iterator[Server]:
        sequence = self.sequence
        period = len(sequence)
        remaining = len(self.servers)
        seen = [False] * remaining
        start = turn % period
        for step in range(period):
            position = sequence[(start + step) % period]
            if not seen[position]:
                seen[position] = True
                yield self.servers[position]
                remaining -= 1
                if not remaining:
                    return


class Rotations:
    """The rotation over each set of available servers, built once and remembered.

    A server going offline and coming back (or warming up step by step) switches
    between a few sets; each one's table is built the first time only.
    """

    def __init__(self, servers: Sequence[Server]) -> None:
        self.full = Rotation(servers)
        self._known: dict[tuple[Server, ...], Rotation] = {self.full.servers: self.full}

    def over(self, available: Sequence[Server]) -> Rotation:
        """The rotation of exactly ``available`` (with their weights)."""
        key = tuple(available)
        rotation = self._known.get(key)
        if rotation is None:
            if len(self._known) >= REMEMBERED_ROTATIONS:
                self._known = {self.full.servers: self.full}
            rotation = self._known[key] = Rotation(key)
        return rotation
