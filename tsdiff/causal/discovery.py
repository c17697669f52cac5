"""Learning which metrics drive which, with time lags, from normal data.

* :func:`screen_metrics` sets aside constant metrics and near-duplicates (they break the linear
  algebra of the tests and carry no extra causal information);
* :func:`choose_lag` picks the lag order with a VAR information criterion (statsmodels);
* :func:`discover_pc` runs the PC algorithm (causal-learn, Fisher-z by default) over the current
  values and their lagged copies, with time order as background knowledge: a lagged value may
  cause a current one, never the reverse, and lagged values are not linked among themselves (only
  the parents of current values matter);
* :func:`discover_granger` is the alternative: pairwise Granger tests (statsmodels), corrected for
  the number of tests.

Each returns edges as ``(cause, effect, lag, oriented)`` over column positions.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

from tsdiff.errors import ParameterError

logger = logging.getLogger(__name__)

INDEPENDENCE_TESTS = ("fisherz", "kci", "chisq", "gsq")
JITTER = 1e-3  # standard deviations added to the standardised design, see discover_pc


@dataclass
class Screening:
    """Which metrics take part in discovery.

    Attributes
    ----------
    usable
        Column positions of the metrics used.
    constant
        Positions of metrics constant in training (no mechanism can be learned; they are scored
        on their own as deviations from that constant).
    duplicate_of
        Position -> position of the metric it duplicates (correlation above the screening level).
    """

    usable: list[int]
    constant: list[int]
    duplicate_of: dict[int, int]


def screen_metrics(values: np.ndarray, duplicate_corr: float = 0.999) -> Screening:
    """Set aside constant metrics and near-duplicates of earlier metrics."""
    # constant: a spread of exactly 0 (the standard deviation of a constant column can come out
    # as 1e-17, which made a constant metric look usable)
    varies = np.zeros(values.shape[1], dtype=bool)
    if len(values):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)  # an all-missing column: NaN
            varies = np.nanmax(values, axis=0) > np.nanmin(values, axis=0)
    constant = [int(j) for j in np.flatnonzero(~varies)]
    candidates = [int(j) for j in np.flatnonzero(varies)]
    usable: list[int] = []
    duplicate_of: dict[int, int] = {}
    if candidates:
        filled = np.where(
            np.isnan(values[:, candidates]), np.nanmean(values[:, candidates], axis=0), values[:, candidates]
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.corrcoef(filled, rowvar=False)
        corr = np.atleast_2d(corr)
        for a, j in enumerate(candidates):
            twin = next(
                (
                    candidates[b]
                    for b in range(a)
                    if abs(corr[a, b]) >= duplicate_corr and candidates[b] in usable
                ),
                None,
            )
            if twin is None:
                usable.append(j)
            else:
                duplicate_of[j] = twin
    return Screening(usable=usable, constant=constant, duplicate_of=duplicate_of)


def choose_lag(values: np.ndarray, max_lag: int, criterion: str = "bic", max_rows: int = 5000) -> int:
    """Lag order of a VAR fitted to (the last ``max_rows`` rows of) ``values``, between 1 and ``max_lag``.

    Metrics screened on all rows can still be constant, or duplicates of one another, within the
    rows sampled here, which makes the VAR's covariance singular; they are set aside for the lag
    choice (:func:`screen_metrics` on the sample). When the VAR still cannot be fitted, the lag
    falls back to 1 with a warning.
    """
    from statsmodels.tsa.api import VAR

    if max_lag < 1:
        raise ParameterError(f"max_lag must be >= 1, got {max_lag}")
    if criterion not in ("aic", "bic", "hqic", "fpe"):
        raise ParameterError(f"lag criterion must be aic, bic, hqic or fpe, got {criterion!r}")
    x = _ffill(values[-max_rows:])
    x = x[~np.isnan(x).any(axis=1)]
    if x.shape[0] < 10 * (max_lag + 1) or x.shape[1] < 1:
        return 1
    # non-constant, and no duplicate, in the rows every lagged copy of a metric covers
    x = x[:, screen_metrics(x[max_lag : len(x) - max_lag]).usable]
    if x.shape[1] < 1:
        return 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            order = VAR(x).select_order(maxlags=max_lag)
        chosen = int(getattr(order, criterion))
    except (np.linalg.LinAlgError, ValueError) as exc:
        message = f"VAR lag selection failed ({exc}); the causal model uses lag 1"
        logger.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        return 1
    return int(min(max(chosen, 1), max_lag))


def lagged_design(values: np.ndarray, lag: int, rows: np.ndarray) -> np.ndarray:
    """Columns ``[x_t (K), x_{t-1} (K), ..., x_{t-lag} (K)]`` for the given rows ``t`` (each >= lag)."""
    return np.hstack([values[rows - k] for k in range(lag + 1)])


def sample_rows(n_rows: int, lag: int, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``max_rows`` row positions (sorted) that have ``lag`` rows of history."""
    rows = np.arange(lag, n_rows)
    if len(rows) > max_rows:
        rows = np.sort(rng.choice(rows, size=max_rows, replace=False))
    return rows


def discover_pc(
    values: np.ndarray,
    lag: int,
    alpha: float = 0.01,
    indep_test: str = "fisherz",
    max_rows: int = 5000,
    max_depth: int | None = 3,
    rng: np.random.Generator | None = None,
) -> list[tuple[int, int, int, bool]]:
    """PC over current and lagged values with time order as background knowledge.

    Parameters
    ----------
    values
        (n_rows, K) training values of the usable metrics (NaN rows are dropped).
    lag
        Largest lag considered.
    alpha
        Significance level of the conditional-independence tests.
    indep_test
        causal-learn test name; Fisher-z suits the roughly Gaussian, linear case and is fast.
    max_rows
        Rows sampled for the tests.
    max_depth
        Largest conditioning set (None: unbounded); bounds the run time on many metrics.
    """
    from causallearn.graph.GraphNode import GraphNode
    from causallearn.search.ConstraintBased.PC import pc
    from causallearn.utils.PCUtils.BackgroundKnowledge import BackgroundKnowledge

    if indep_test not in INDEPENDENCE_TESTS:
        raise ParameterError(f"independence test must be one of {INDEPENDENCE_TESTS}, got {indep_test!r}")
    rng = rng or np.random.default_rng(0)
    k = values.shape[1]
    design = lagged_design(values, lag, sample_rows(values.shape[0], lag, max_rows, rng))
    design = design[~np.isnan(design).any(axis=1)]
    if design.shape[0] < 4 * design.shape[1]:
        raise ParameterError(
            f"only {design.shape[0]} complete rows for {design.shape[1]} lagged variables; "
            "give more training rows or a smaller max_lag"
        )
    # a metric can be constant within the sampled rows though not over all of training (rare
    # spikes): such columns carry no information here and would make the test statistics NaN
    std = design.std(axis=0)
    kept = np.flatnonzero(std > 1e-12 * np.maximum(1.0, np.abs(design).max(axis=0)))
    if len(kept) < 2:
        return []
    design = (design[:, kept] - design[:, kept].mean(axis=0)) / std[kept]
    # exact linear ties (a step metric equal to its own lagged copy on every sampled row, exact
    # duplicates among lags) make the correlation matrix singular; a jitter far below the test's
    # resolution keeps it invertible without changing which dependencies are found
    design = design + rng.normal(scale=JITTER, size=design.shape)
    names = [f"x{i % k}_lag{i // k}" for i in kept]
    nodes = [GraphNode(name) for name in names]
    knowledge = BackgroundKnowledge()
    for i, node in zip(kept, nodes, strict=True):
        knowledge.add_node_to_tier(node, 1 if i < k else 0)  # tier 0: the past, tier 1: the present
    knowledge.forbid_within_tier(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = pc(
            design,
            alpha=alpha,
            indep_test=indep_test,
            background_knowledge=knowledge,
            show_progress=False,
            node_names=names,
            max_k=max_depth,
        ).G.graph
    edges: list[tuple[int, int, int, bool]] = []
    present = [(a, i) for a, i in enumerate(kept) if i < k]  # (node in the graph, metric)
    for effect_node, effect in present:  # only edges into present values matter
        for cause_node, i in enumerate(kept):
            if cause_node == effect_node or graph[cause_node, effect_node] == 0:
                continue
            cause, shift = int(i % k), int(i // k)
            if shift > 0:
                edges.append((cause, int(effect), shift, True))
            elif graph[effect_node, cause_node] == 1 and graph[cause_node, effect_node] == -1:
                edges.append((cause, int(effect), 0, True))  # cause -> effect
            elif graph[effect_node, cause_node] == graph[cause_node, effect_node]:
                edges.append((cause, int(effect), 0, False))  # undirected (or bidirected): listed both ways
    return edges


def discover_granger(
    values: np.ndarray,
    lag: int,
    alpha: float = 0.01,
    max_rows: int = 5000,
) -> list[tuple[int, int, int, bool]]:
    """Pairwise Granger causality (statsmodels' F test), Bonferroni-corrected over all pairs.

    For a significant pair, edges are emitted at every lag from 1 to the most significant one.
    """
    from statsmodels.tsa.stattools import grangercausalitytests

    x = _ffill(values[-max_rows:])
    x = x[~np.isnan(x).any(axis=1)]
    k = x.shape[1]
    level = alpha / max(1, k * (k - 1))
    edges: list[tuple[int, int, int, bool]] = []
    for effect in range(k):
        for cause in range(k):
            if cause == effect:
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = grangercausalitytests(x[:, [effect, cause]], maxlag=lag)
            except (ValueError, np.linalg.LinAlgError):
                continue
            pvalues = {s: result[s][0]["ssr_ftest"][1] for s in result}
            best = min(pvalues, key=pvalues.get)
            if pvalues[best] < level:
                edges.extend((cause, effect, s, True) for s in range(1, best + 1))
    return edges


def _ffill(values: np.ndarray) -> np.ndarray:
    from tsdiff.frame import fill_missing

    return fill_missing(values, fill_value=np.nan)
