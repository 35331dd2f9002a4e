"""A small exact solver for zebra puzzles: bitmask domains, propagation, then search.

Variables are attribute values (``category * n + value``); each takes a position in
``0..n-1`` and values of one category take different positions. Clues are unary
(``at``, ``not_at``, ``ends``) or binary (``same``, ``not_same``, ``left_of``,
``imm_left``, ``next_to``); "X is somewhere in between Y and Z in that order" is
``left_of(Y, X)`` and ``left_of(X, Z)``. Propagation is arc consistency plus naked and
hidden singles per category; :func:`count_solutions` searches on top of it, so its count
is exact (a proof of uniqueness when it returns 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

Kind = Literal["same", "not_same", "at", "not_at", "ends", "left_of", "imm_left", "next_to"]
BINARY: Final = ("same", "not_same", "left_of", "imm_left", "next_to")


@dataclass(frozen=True, slots=True)
class Constraint:
    kind: Kind
    a: int
    b: int = -1  # the second variable (binary), or the position (at / not_at)


def _supports(kind: Kind, n: int) -> tuple[list[int], list[int]]:
    """For each position q: allowed positions of a given b == q, and of b given a == q."""

    def ok(p: int, q: int) -> bool:
        if kind == "same":
            return p == q
        if kind == "not_same":
            return p != q
        if kind == "left_of":
            return p < q
        if kind == "imm_left":
            return p + 1 == q
        return abs(p - q) == 1  # next_to

    for_a = [sum(1 << p for p in range(n) if ok(p, q)) for q in range(n)]
    for_b = [sum(1 << q for q in range(n) if ok(p, q)) for p in range(n)]
    return for_a, for_b


class Solver:
    """Propagation and search for one puzzle shape (``n`` positions, ``k`` categories)."""

    def __init__(self, n: int, k: int, constraints: Sequence[Constraint]) -> None:
        self.n, self.k = n, k
        self.full = (1 << n) - 1
        self.unary: list[Constraint] = [c for c in constraints if c.kind not in BINARY]
        self.binary: list[tuple[int, int, list[int], list[int]]] = []
        tables: dict[Kind, tuple[list[int], list[int]]] = {}
        for c in constraints:
            if c.kind in BINARY:
                if c.kind not in tables:
                    tables[c.kind] = _supports(c.kind, n)
                for_a, for_b = tables[c.kind]
                self.binary.append((c.a, c.b, for_a, for_b))

    def initial(self) -> list[int] | None:
        domains = [self.full] * (self.n * self.k)
        ends = 1 | (1 << (self.n - 1))
        for c in self.unary:
            if c.kind == "at":
                domains[c.a] &= 1 << c.b
            elif c.kind == "not_at":
                domains[c.a] &= ~(1 << c.b)
            else:
                domains[c.a] &= ends
        return self.propagate(domains)

    def propagate(self, domains: list[int]) -> list[int] | None:
        """Shrink ``domains`` to a fixpoint (in place); None on a contradiction."""
        n = self.n
        changed = True
        while changed:
            changed = False
            for a, b, for_a, for_b in self.binary:
                da, db = domains[a], domains[b]
                sa = 0
                q = db
                while q:
                    low = q & -q
                    sa |= for_a[low.bit_length() - 1]
                    q ^= low
                sb = 0
                p = da
                while p:
                    low = p & -p
                    sb |= for_b[low.bit_length() - 1]
                    p ^= low
                na, nb = da & sa, db & sb
                if na != da or nb != db:
                    if not na or not nb:
                        return None
                    domains[a], domains[b] = na, nb
                    changed = True
            for cat in range(self.k):
                base = cat * n
                group = domains[base : base + n]
                fixed = 0
                for d in group:
                    if d & (d - 1) == 0:
                        if not d or d & fixed:
                            return None
                        fixed |= d
                for i, d in enumerate(group):
                    if d & (d - 1) and d & fixed:
                        domains[base + i] = d & ~fixed
                        changed = True
                group = domains[base : base + n]
                union = 0
                for d in group:
                    union |= d
                if union != self.full:
                    return None
                for pos in range(n):
                    bit = 1 << pos
                    holders = [i for i, d in enumerate(group) if d & bit]
                    if len(holders) == 1 and group[holders[0]] != bit:
                        domains[base + holders[0]] = bit
                        changed = True
        return domains

    def solved(self, domains: Sequence[int]) -> bool:
        return all(d & (d - 1) == 0 for d in domains)

    def count(self, limit: int = 2) -> tuple[int, list[int] | None]:
        """Number of solutions (stops at ``limit``) and the first one found (positions)."""
        start = self.initial()
        if start is None:
            return 0, None
        found: list[list[int]] = []
        self._search(start, limit, found)
        first = [d.bit_length() - 1 for d in found[0]] if found else None
        return len(found), first

    def _search(self, domains: list[int], limit: int, found: list[list[int]]) -> None:
        if len(found) >= limit:
            return
        open_vars = [(bin(d).count("1"), i) for i, d in enumerate(domains) if d & (d - 1)]
        if not open_vars:
            found.append(domains)
            return
        _, var = min(open_vars)
        d = domains[var]
        while d and len(found) < limit:
            low = d & -d
            d ^= low
            trial = list(domains)
            trial[var] = low
            result = self.propagate(trial)
            if result is not None:
                self._search(result, limit, found)


def count_solutions(
    n: int, k: int, constraints: Sequence[Constraint], limit: int = 2
) -> tuple[int, list[int] | None]:
    """Exact solution count up to ``limit``, with the first solution (position per variable)."""
    return Solver(n, k, constraints).count(limit)


def propagation_solves(n: int, k: int, constraints: Sequence[Constraint]) -> bool:
    """True when propagation alone fixes every variable (hence a unique solution)."""
    domains = Solver(n, k, constraints).initial()
    return domains is not None and all(d & (d - 1) == 0 for d in domains)
