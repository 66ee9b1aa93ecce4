import json

import numpy as np
import pytest
import scipy.sparse as sp

import inrcore.skeleton.cover as cover
from inrcore.skeleton.cover import (
    CoverResult,
    coverage_matrix,
    equal_column_pairs,
    essential_rows,
    greedy_cover,
    missed_rows,
    reduce_cover_problem,
    select_balls,
    solve_cover,
    subset_pairs,
    undominated_columns,
)
from inrcore.skeleton.settings import CoverConfig


def matrix_from_columns(n_rows, columns):
    """Bool CSR [n_rows, len(columns)] with column i covering the rows listed in columns[i]."""
    dense = np.zeros((n_rows, len(columns)), dtype=bool)
    for i, rows in enumerate(columns):
        dense[list(rows), i] = True
    return sp.csr_matrix(dense)


def covers(matrix, selected):
    return len(missed_rows(matrix, selected)) == 0


def test_coverage_matrix_by_hand_with_the_boundary_included():
    # Samples on the x axis; ball 0 at the origin (r 0.5), ball 1 at x = 2 (r 0.25); delta 0.25.
    surface = np.array([[0.0, 0, 0], [0.75, 0, 0], [0.7500001, 0, 0], [-0.5, 0, 0], [1.5, 0, 0], [2.0, 0, 0]])
    centres = np.array([[0.0, 0, 0], [2.0, 0, 0]])
    radii = np.array([0.5, 0.25])
    matrix = coverage_matrix(surface, centres, radii, delta=0.25)
    assert sp.issparse(matrix) and matrix.shape == (6, 2)
    expected = np.array([
        [1, 0],  # the centre of ball 0
        [1, 0],  # ‖s − c‖ − r = 0.75 − 0.5 == delta: on the boundary, covered
        [0, 0],  # just outside
        [1, 0],  # on ball 0 itself
        [0, 1],  # 0.5 − 0.25 == delta from ball 1: covered
        [0, 1],
    ], dtype=bool)
    assert np.array_equal(matrix.toarray(), expected)


def test_coverage_matrix_matches_the_brute_force_test():
    rng = np.random.default_rng(3)
    surface = rng.uniform(-1, 1, (300, 3))
    centres = rng.uniform(-1, 1, (80, 3))
    radii = rng.uniform(0.0, 0.4, 80)
    brute = np.linalg.norm(surface[:, None] - centres[None], axis=-1) - radii[None] <= 0.05
    assert np.array_equal(coverage_matrix(surface, centres, radii, 0.05).toarray(), brute)


def test_coverage_matrix_of_nothing_is_empty():
    assert coverage_matrix(np.zeros((0, 3)), np.zeros((2, 3)), np.ones(2), 0.1).shape == (0, 2)
    assert coverage_matrix(np.zeros((3, 3)), np.zeros((0, 3)), np.zeros(0), 0.1).shape == (3, 0)


def test_smallest_cover_of_four_rows_takes_two_columns():
    # Columns {0,1}, {1,2}, {2,3}, {0,2}: row 3 forces column 2, then column 0 covers rows 0 and 1.
    matrix = matrix_from_columns(4, [{0, 1}, {1, 2}, {2, 3}, {0, 2}])
    for presolve in (True, False):
        result = solve_cover(matrix, time_limit=10.0, mip_gap=0.0, presolve=presolve)
        assert result.method == "milp" and result.status == 0
        assert result.selected.tolist() == [0, 2]
        assert result.objective == pytest.approx(2.0)
        assert result.gap == pytest.approx(0.0, abs=1e-9)
        assert result.uncovered.tolist() == []


def test_greedy_can_take_more_than_the_optimum():
    # Column 0 covers four rows, so greedy takes it first, then needs columns 1 and 2 for rows 2 and 5;
    # columns 1 and 2 alone cover everything.
    matrix = matrix_from_columns(6, [{0, 1, 3, 4}, {0, 1, 2}, {3, 4, 5}])
    assert greedy_cover(matrix).tolist() == [0, 1, 2]
    assert solve_cover(matrix, time_limit=10.0, mip_gap=0.0).selected.tolist() == [1, 2]


def test_greedy_breaks_ties_by_the_lowest_index_and_can_start_from_columns():
    matrix = matrix_from_columns(4, [{0, 1}, {2, 3}, {0, 1}, {1, 2}])
    assert greedy_cover(matrix).tolist() == [0, 1]
    assert greedy_cover(matrix, start=np.array([3])).tolist() == [0, 1, 3]
    assert missed_rows(matrix, np.array([3])).tolist() == [0, 3]


def test_subset_pairs_by_hand():
    matrix = matrix_from_columns(3, [{0}, {0, 1}, {0, 1}, set(), {2}])
    pairs = sorted(zip(*(x.tolist() for x in subset_pairs(matrix))))
    assert pairs == [(0, 1), (0, 2), (1, 2), (2, 1)]


def test_presolve_drops_dominated_empty_and_repeated_columns():
    # Column 1 ⊂ column 0; column 3 repeats column 2 (the lower index, 2, is kept); column 4 is empty.
    matrix = matrix_from_columns(4, [{0, 1, 2}, {1, 2}, {2, 3}, {2, 3}, set()])
    assert undominated_columns(matrix).tolist() == [0, 2]
    with_presolve = solve_cover(matrix, time_limit=10.0, mip_gap=0.0, presolve=True)
    without = solve_cover(matrix, time_limit=10.0, mip_gap=0.0, presolve=False)
    assert with_presolve.candidates_after_presolve == 2 and without.candidates_after_presolve == 5
    assert with_presolve.selected.tolist() == [0, 2]
    # Without the presolve the solver may take either copy of the repeated column: same size.
    assert len(without.selected) == 2 and covers(matrix, without.selected)


def test_presolve_only_merges_repeated_columns_when_the_overlaps_are_too_many(monkeypatch):
    matrix = matrix_from_columns(4, [{0, 1, 2}, {1, 2}, {2, 3}, {2, 3}, set()])
    assert sorted(zip(*(x.tolist() for x in equal_column_pairs(matrix)))) == [(2, 3), (3, 2)]
    monkeypatch.setattr(cover, "_MAX_OVERLAP_WORK", 0)
    assert undominated_columns(matrix).tolist() == [0, 1, 2]  # column 1 ⊂ column 0 is no longer seen
    assert solve_cover(matrix, time_limit=10.0, mip_gap=0.0).selected.tolist() == [0, 2]


def test_presolve_drops_redundant_rows():
    # Row 0 is covered by columns {0}; rows 1 and 2 by {0, 1} ⊇ {0}: covering row 0 covers them.
    # Rows 3 and 4 are both covered by {2} alone: the lower one, 3, is kept.
    matrix = matrix_from_columns(5, [{0, 1, 2}, {1, 2}, {3, 4}])
    assert essential_rows(matrix).tolist() == [0, 3]
    rows, cols = reduce_cover_problem(matrix)
    assert rows.tolist() == [0, 3] and cols.tolist() == [0, 2]


def test_a_row_no_ball_covers_is_reported_and_the_rest_covered():
    matrix = matrix_from_columns(4, [{0, 1}, {1}, {3}])  # row 2: no column
    result = solve_cover(matrix, time_limit=10.0, mip_gap=0.0)
    assert result.uncovered.tolist() == [2]
    assert result.selected.tolist() == [0, 2]
    assert result.to_dict()["n_uncovered"] == 1


def test_nothing_coverable_gives_an_empty_cover():
    result = solve_cover(sp.csr_matrix((3, 2), dtype=bool), time_limit=1.0, mip_gap=0.0)
    assert result.selected.tolist() == [] and result.uncovered.tolist() == [0, 1, 2]
    assert result.message == "nothing to cover"


def random_instance(seed, n_rows=60, n_cols=50, density=0.08):
    rng = np.random.default_rng(seed)
    return sp.csr_matrix(rng.random((n_rows, n_cols)) < density)


def test_greedy_fallback_when_the_solver_finds_no_solution_in_time():
    matrix = random_instance(0, n_rows=400, n_cols=400, density=0.03)
    result = solve_cover(matrix, time_limit=1e-6, mip_gap=0.0, presolve=False)
    assert result.method == "greedy"
    assert result.status == 1 and "time limit" in result.message.lower()
    assert result.objective is None
    assert covers(matrix, result.selected)
    assert result.selected.tolist() == greedy_cover(matrix).tolist()
    json.dumps(result.to_dict())


@pytest.mark.parametrize("seed", range(8))
def test_random_covers_are_valid_and_never_larger_than_greedy(seed):
    matrix = random_instance(seed)
    result = solve_cover(matrix, time_limit=20.0, mip_gap=0.0)
    plain = solve_cover(matrix, time_limit=20.0, mip_gap=0.0, presolve=False)
    coverable = np.flatnonzero(matrix.getnnz(axis=1) > 0)
    assert result.method == "milp" and result.status == 0
    assert np.array_equal(result.uncovered, np.setdiff1d(np.arange(matrix.shape[0]), coverable))
    assert covers(matrix, result.selected) and covers(matrix, plain.selected)
    assert len(result.selected) == len(plain.selected)  # the presolve keeps the optimum
    assert len(result.selected) <= len(greedy_cover(matrix))
    assert np.all(np.diff(result.selected) > 0)


def test_select_balls_on_a_circle_of_samples():
    # 12 samples on the unit circle, 30° apart; three balls of radius 0.9 centred at distance 0.5
    # from the origin, 120° apart; a small ball at the origin that covers nothing.
    angles = np.arange(12) * np.pi / 6
    surface = np.stack([np.cos(angles), np.sin(angles), np.zeros(12)], axis=1)
    big = np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3])
    centres = np.concatenate([0.5 * np.stack([np.cos(big), np.sin(big), np.zeros(3)], axis=1), [[0.0, 0, 0]]])
    radii = np.array([0.9, 0.9, 0.9, 0.1])
    result = select_balls(surface, centres, radii, CoverConfig(delta=0.05, time_limit=10.0, mip_gap=0.0))
    # A sample at angle θ from a big ball's direction is at distance sqrt(1.25 − cos θ) from its
    # centre: θ ≤ 60° gives ≤ 0.866 < 0.95, θ = 90° gives 1.118: each ball covers 5 samples, all three needed.
    assert isinstance(result, CoverResult)
    assert result.selected.tolist() == [0, 1, 2]
    assert result.uncovered.tolist() == []
    summary = result.to_dict()
    assert summary["n_selected"] == 3 and summary["candidates"] == 4 and summary["method"] == "milp"
    assert json.loads(json.dumps(summary)) == summary
