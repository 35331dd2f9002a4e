import itertools
import random

from thinkstop.benchmarks.tasks.zebra_gen import generate_puzzle
from thinkstop.benchmarks.tasks.zebra_solver import Constraint, count_solutions, propagation_solves


def _holds(c: Constraint, pos: list[int], n: int) -> bool:
    a = pos[c.a]
    if c.kind == "at":
        return a == c.b
    if c.kind == "not_at":
        return a != c.b
    if c.kind == "ends":
        return a in (0, n - 1)
    b = pos[c.b]
    return {
        "same": a == b,
        "not_same": a != b,
        "left_of": a < b,
        "imm_left": a + 1 == b,
        "next_to": abs(a - b) == 1,
    }[c.kind]


def _brute_force(n: int, k: int, constraints: list[Constraint]) -> int:
    count = 0
    for perms in itertools.product(itertools.permutations(range(n)), repeat=k):
        pos = [p for perm in perms for p in perm]
        if all(_holds(c, pos, n) for c in constraints):
            count += 1
    return count


def _random_constraints(rng: random.Random, n: int, k: int, m: int) -> list[Constraint]:
    out = []
    for _ in range(m):
        kind = rng.choice(
            ["same", "not_same", "left_of", "imm_left", "next_to", "at", "not_at", "ends"]
        )
        a = rng.randrange(n * k)
        if kind in ("at", "not_at"):
            out.append(Constraint(kind, a, rng.randrange(n)))
        elif kind == "ends":
            out.append(Constraint(kind, a))
        else:
            b = rng.choice([v for v in range(n * k) if v != a])
            out.append(Constraint(kind, a, b))
    return out


def test_solver_counts_match_brute_force():
    rng = random.Random(0)
    for _ in range(60):
        n, k = 4, 2
        constraints = _random_constraints(rng, n, k, rng.randint(1, 6))
        exact = _brute_force(n, k, constraints)
        count, solution = count_solutions(n, k, constraints, limit=1000)
        assert count == exact
        if solution is not None:
            assert all(_holds(c, solution, n) for c in constraints)


def test_generated_puzzles_are_unique_and_answer_is_right():
    for size in (5, 6, 7, 8):
        puzzle = generate_puzzle(random.Random(size), size)
        k = len(puzzle.categories)
        count, solution = count_solutions(size, k, list(puzzle.constraints))
        assert count == 1
        flat = [p for cat in puzzle.solution for p in cat]
        assert solution == flat
        assert puzzle.answer == flat[puzzle.question_var] + 1
        # Minimal for propagation: every relevant clue is needed.
        assert propagation_solves(size, k, list(puzzle.constraints))


def test_dropping_clues_loses_uniqueness():
    puzzle = generate_puzzle(random.Random(11), 5)
    k = len(puzzle.categories)
    count, _ = count_solutions(5, k, list(puzzle.constraints)[: len(puzzle.constraints) // 3])
    assert count == 2  # search stops at the limit: not unique


def test_contradiction_has_no_solution():
    constraints = [Constraint("at", 0, 0), Constraint("at", 1, 0)]  # two values, one position
    assert count_solutions(3, 1, constraints)[0] == 0
