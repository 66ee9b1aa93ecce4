"""Coverage-Axis selection (Dou et al. 2022): the fewest candidate balls that, each dilated by
`delta`, cover every surface sample.

The coverage matrix D [S, C] has D[j, i] = 1 when surface sample j lies in candidate ball i dilated
by delta (‖s_j − c_i‖ − r_i ≤ delta). The set cover "minimise Σv subject to D v ≥ 1, v ∈ {0, 1}^C"
is solved on the rows that some ball covers (the others are reported in `CoverResult.uncovered`)
by `scipy.optimize.milp` (HiGHS), after a presolve that drops dominated columns and redundant rows;
a greedy cover is the fallback when the solver stops without a solution.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Optional

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.spatial import cKDTree

from inrcore.skeleton.settings import CoverConfig


# Column blocks of the presolve's overlap product D[:, block].T @ D (bounds its memory).
_BLOCK = 1024
# Above this many row-wise column pairs (Σ_rows nnz²: the overlap product's work, ~1e6 for 5,000
# balls on 2,000 samples, ~1 s per 5e7 on one core) only repeated columns are found, not subsets.
_MAX_OVERLAP_WORK = 1e8
# At most this many rounds of alternating column / row reduction in the presolve.
_PRESOLVE_ROUNDS = 10


@dataclasses.dataclass(frozen=True, eq=False)
class CoverResult:
    """A cover of the surface samples by candidate balls.

    selected [K]: indices into the candidates, sorted; they cover every coverable row.
    method: "milp" (the solver's solution, possibly completed, see `repaired`) or "greedy" (the
        solver stopped without a solution; `status` and `message` are still the solver's).
    status, message: `scipy.optimize.milp`'s (0 optimal, 1 time/iteration limit, 2 infeasible,
        4 other); status 0 with message "nothing to cover" when no row is coverable (no solve).
    gap: the solver's relative MIP gap, when it reports one. objective: the solver's objective
        (its cover size), None when it returned no solution. dual_bound: its lower bound, if any.
    seconds: wall time of `solve_cover` (presolve, solve and fallback together).
    uncovered [U]: rows (surface samples) no candidate covers; they are left out of the cover.
    candidates, candidates_after_presolve, rows_after_presolve: the problem's size before and
        after the presolve (rows counted among the coverable ones).
    repaired: columns added greedily because the rounded solver solution missed a row (numerics).
    """

    selected: np.ndarray
    method: str
    status: int
    message: str
    gap: Optional[float]
    objective: Optional[float]
    seconds: float
    uncovered: np.ndarray
    candidates: int
    candidates_after_presolve: int
    rows_after_presolve: int = 0
    dual_bound: Optional[float] = None
    repaired: int = 0

    def to_dict(self) -> dict:
        """JSON-ready summary: counts and solver values, no arrays."""
        return {
            "n_selected": int(len(self.selected)),
            "method": self.method,
            "status": int(self.status),
            "message": str(self.message),
            "gap": _optional_float(self.gap),
            "objective": _optional_float(self.objective),
            "dual_bound": _optional_float(self.dual_bound),
            "seconds": float(self.seconds),
            "n_uncovered": int(len(self.uncovered)),
            "candidates": int(self.candidates),
            "candidates_after_presolve": int(self.candidates_after_presolve),
            "rows_after_presolve": int(self.rows_after_presolve),
            "repaired": int(self.repaired),
        }


def _optional_float(value) -> Optional[float]:
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def coverage_matrix(surface: np.ndarray, centres: np.ndarray, radii: np.ndarray, delta: float) -> sp.csr_matrix:
    """Which dilated ball covers which surface sample: [S, 3], [C, 3], [C], delta -> bool CSR [S, C].

    D[j, i] is True when ‖s_j − c_i‖ − r_i ≤ delta (the boundary included). Built from a k-d tree of
    the samples (one ball query of radius r_i + delta per candidate, then the exact test), never as
    a dense S × C matrix.
    """
    surface = np.asarray(surface, dtype=np.float64).reshape(-1, 3)
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 3)
    radii = np.asarray(radii, dtype=np.float64).reshape(-1)
    if len(radii) != len(centres):
        raise ValueError(f"{len(centres)} centres but {len(radii)} radii")
    shape = (len(surface), len(centres))
    if not len(surface) or not len(centres):
        return sp.csr_matrix(shape, dtype=bool)
    reach = np.maximum(radii + delta, 0.0)
    # A little slack so that rounding in the tree never loses a boundary point; the exact test follows.
    lists = cKDTree(surface).query_ball_point(centres, reach * (1 + 1e-9) + 1e-12)
    counts = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    rows = np.concatenate([np.asarray(x, dtype=np.int64) for x in lists]) if counts.sum() else np.zeros(0, np.int64)
    cols = np.repeat(np.arange(len(centres)), counts)
    inside = np.linalg.norm(surface[rows] - centres[cols], axis=1) - radii[cols] <= delta
    rows, cols = rows[inside], cols[inside]
    return sp.csr_matrix((np.ones(len(rows), dtype=bool), (rows, cols)), shape=shape)


def subset_pairs(matrix: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of columns (i, k), i ≠ k, whose row sets nest, rows(i) ⊆ rows(k): [S, C] -> [P], [P].

    From the overlap counts D.T @ D (only pairs sharing a row appear), in blocks of columns;
    empty columns take part in no pair. When that product would be too large (more than
    `_MAX_OVERLAP_WORK` row-wise pairs) only the pairs of equal non-empty columns are returned.
    """
    csc = _binary(matrix, np.int32).tocsc()
    counts = np.diff(csc.indptr)
    if float(np.square(np.diff(csc.tocsr().indptr), dtype=np.float64).sum()) > _MAX_OVERLAP_WORK:
        return equal_column_pairs(csc)
    right = csc.tocsr()
    firsts, seconds = [], []
    for start in range(0, csc.shape[1], _BLOCK):
        overlap = (csc[:, start:start + _BLOCK].T @ right).tocoo()
        i, k = overlap.row.astype(np.int64) + start, overlap.col.astype(np.int64)
        nested = (overlap.data == counts[i]) & (i != k)
        firsts.append(i[nested])
        seconds.append(k[nested])
    if not firsts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(firsts), np.concatenate(seconds)


def equal_column_pairs(matrix: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of distinct non-empty columns (i, k) with the same rows, both orders: [S, C] -> [P], [P]."""
    csc = _binary(matrix, bool).tocsc()
    groups: dict[bytes, list[int]] = {}
    for column in range(csc.shape[1]):
        rows = csc.indices[csc.indptr[column]:csc.indptr[column + 1]]
        if len(rows):
            groups.setdefault(np.sort(rows).astype(np.int64).tobytes(), []).append(column)
    pairs = [(i, k) for members in groups.values() for i in members for k in members if i != k]
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    first, second = np.asarray(pairs, dtype=np.int64).T
    return first, second


def _binary(matrix: sp.spmatrix, dtype) -> sp.csr_matrix:
    """The matrix as CSR of 0/1 entries of `dtype`, explicit zeros and duplicates removed."""
    csr = sp.csr_matrix(matrix, copy=True)
    csr.sum_duplicates()
    csr.eliminate_zeros()
    return sp.csr_matrix((np.ones(csr.nnz, dtype=dtype), csr.indices, csr.indptr), shape=csr.shape)


def undominated_columns(matrix: sp.spmatrix) -> np.ndarray:
    """Columns kept by dropping dominated ones: [S, C] -> sorted indices [C'].

    Column i is dropped when another column covers a strict superset of its rows, or the same rows
    with a lower index (among equal sets the lowest index is kept), or when it covers nothing. Every
    dropped column has a kept one covering all its rows, so the optimum cover size is unchanged.
    """
    counts = np.asarray(_binary(matrix, bool).getnnz(axis=0))
    i, k = subset_pairs(matrix)
    beaten = (counts[k] > counts[i]) | (k < i)
    dropped = np.zeros(len(counts), dtype=bool)
    dropped[i[beaten]] = True
    dropped |= counts == 0
    return np.flatnonzero(~dropped)


def essential_rows(matrix: sp.spmatrix) -> np.ndarray:
    """Rows kept by dropping redundant ones: [S, C] -> sorted indices [S'].

    Row k is redundant when another row's covering columns are a subset of k's (covering that row
    covers k), or the same set with a lower index. Rows no column covers are kept (callers remove them).
    """
    csr = _binary(matrix, bool)
    counts = np.asarray(csr.getnnz(axis=1))
    j, k = subset_pairs(csr.T)
    beaten = (counts[k] > counts[j]) | (j < k)
    dropped = np.zeros(len(counts), dtype=bool)
    dropped[k[beaten]] = True
    return np.flatnonzero(~dropped)


def reduce_cover_problem(matrix: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """Presolve of the set cover: [S, C] -> (kept rows [S'], kept columns [C']), both sorted.

    Alternates `undominated_columns` and `essential_rows` (a dropped column can make rows redundant
    and the other way round) until nothing changes (at most `_PRESOLVE_ROUNDS` rounds). Any cover of
    the kept rows by the kept columns covers every coverable row, and a smallest one is a smallest
    cover overall.
    """
    csr = _binary(matrix, bool)
    rows = np.arange(csr.shape[0])
    cols = np.arange(csr.shape[1])
    for _ in range(_PRESOLVE_ROUNDS):
        cols = cols[undominated_columns(csr[rows][:, cols])]
        kept_rows = essential_rows(csr[rows][:, cols])
        if len(kept_rows) == len(rows):  # same rows: the columns are already undominated
            break
        rows = rows[kept_rows]
    return rows, cols


def greedy_cover(matrix: sp.spmatrix, start: Optional[np.ndarray] = None) -> np.ndarray:
    """A greedy cover of the coverable rows: [S, C] -> sorted column indices.

    Starting from the columns `start` (none by default), repeatedly takes the column covering the
    most rows still uncovered, ties to the lowest index, until every row some column covers is
    covered. The result includes `start`.
    """
    csr = _binary(matrix, bool)
    csc = csr.tocsc()
    uncovered = np.asarray(csr.getnnz(axis=1)) > 0
    chosen = [] if start is None else [int(c) for c in np.asarray(start).reshape(-1)]
    for column in chosen:
        uncovered[csc.indices[csc.indptr[column]:csc.indptr[column + 1]]] = False
    gains = np.asarray(csc.T @ uncovered.astype(np.int64)).reshape(-1)
    while len(gains) and gains.max() > 0:
        column = int(np.argmax(gains))
        rows = csc.indices[csc.indptr[column]:csc.indptr[column + 1]]
        newly = rows[uncovered[rows]]
        uncovered[newly] = False
        gains -= np.bincount(csr[newly].indices, minlength=len(gains))
        chosen.append(column)
    return np.unique(np.asarray(chosen, dtype=np.int64))


def missed_rows(matrix: sp.spmatrix, selected: np.ndarray) -> np.ndarray:
    """Coverable rows that the columns `selected` leave uncovered: [S, C], [K] -> row indices."""
    csr = _binary(matrix, bool)
    coverable = np.asarray(csr.getnnz(axis=1)) > 0
    hit = np.asarray(csr[:, np.asarray(selected, dtype=np.int64)].getnnz(axis=1)) > 0
    return np.flatnonzero(coverable & ~hit)


def solve_cover(matrix: sp.spmatrix, time_limit: float, mip_gap: float, presolve: bool = True) -> CoverResult:
    """The smallest set of columns covering every coverable row of `matrix` [S, C] (bool or 0/1).

    minimise Σv subject to D v ≥ 1 (coverable rows), v binary, by `scipy.optimize.milp` with
    HiGHS's `time_limit` (seconds, the solver's own clock: the presolve here runs before it) and
    relative gap `mip_gap`; the solution is read with a 0.5 threshold. With `presolve`, dominated
    columns and redundant rows are dropped first (`reduce_cover_problem`). When the solver returns
    no solution the result is `greedy_cover` (method "greedy"); a rounded solution that misses a row
    is completed greedily (`repaired` counts the added columns).
    """
    began = time.perf_counter()
    csr = _binary(matrix, bool)
    n_rows, n_cols = csr.shape
    coverable = np.asarray(csr.getnnz(axis=1)) > 0
    uncovered = np.flatnonzero(~coverable)
    if presolve:
        rows, cols = reduce_cover_problem(csr[coverable])
        rows = np.flatnonzero(coverable)[rows]
    else:
        rows, cols = np.flatnonzero(coverable), np.arange(n_cols)
    sizes = dict(uncovered=uncovered, candidates=n_cols, candidates_after_presolve=len(cols),
                 rows_after_presolve=len(rows))
    if not len(rows):
        return CoverResult(selected=np.zeros(0, np.int64), method="milp", status=0, message="nothing to cover",
                           gap=0.0, objective=0.0, seconds=time.perf_counter() - began, **sizes)
    reduced = csr[rows][:, cols].astype(np.float64)
    res = milp(
        c=np.ones(len(cols)),
        constraints=LinearConstraint(reduced, lb=np.ones(len(rows)), ub=np.full(len(rows), np.inf)),
        integrality=np.ones(len(cols)),
        bounds=Bounds(0, 1),
        options={"time_limit": float(time_limit), "mip_rel_gap": float(mip_gap)},
    )
    solver = dict(status=int(res.status), message=str(res.message), gap=getattr(res, "mip_gap", None),
                  dual_bound=getattr(res, "mip_dual_bound", None))
    if res.x is None:
        selected = cols[greedy_cover(csr[rows][:, cols])]
        return CoverResult(selected=selected, method="greedy", objective=None,
                           seconds=time.perf_counter() - began, **solver, **sizes)
    selected = cols[np.flatnonzero(np.asarray(res.x) > 0.5)]
    repaired = 0
    if len(missed_rows(csr, selected)):
        completed = greedy_cover(csr, start=selected)
        repaired = len(completed) - len(selected)
        selected = completed
    return CoverResult(selected=np.sort(selected).astype(np.int64), method="milp", objective=float(res.fun),
                       seconds=time.perf_counter() - began, repaired=repaired, **solver, **sizes)


def select_balls(surface: np.ndarray, centres: np.ndarray, radii: np.ndarray, config: CoverConfig) -> CoverResult:
    """Coverage-Axis selection: surface [S, 3], candidate centres [C, 3] and radii [C] -> `CoverResult`
    (the balls whose `config.delta`-dilation covers the samples, by `solve_cover`)."""
    matrix = coverage_matrix(surface, centres, radii, config.delta)
    return solve_cover(matrix, config.time_limit, config.mip_gap, presolve=config.presolve)
