"""Synthetic multivariate series with a known lagged causal graph and injected, propagating anomalies.

Model (one structural equation per metric ``j``, metrics simulated in one topological order)::

    z_j[t] = (sum over parents (i, lag, w) of w * x_i[t - lag] - mu_j) / sd_j      standardised parent input
    h_j[t] = a_j * h_j[t - 1] + g_j * f_j(z_j[t]) + sigma_j * e_j[t]               autoregressive state
    x_j[t] = h_j[t] + s_j(t) + d_j[t]                                               observed value

``f_j`` is one of tanh, sin, softplus (centred); ``s_j`` is a sine with random period and phase on metrics
without parents (zero elsewhere); ``d_j`` is the additive offset of spike and level-shift anomalies; ``mu_j``
and ``sd_j`` are fixed from the anomaly-free training rows. Every edge, lagged or not, goes from an earlier
to a later metric of one random topological order, so the summary graph is a DAG and each metric can be
simulated over all rows at once (exact, and fast: the recursion in ``h_j`` is a linear filter).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tsdiff.datasets.base import Dataset, labels_from_segments
from tsdiff.errors import ParameterError

ANOMALY_KINDS = ("spike", "level_shift", "contextual", "mechanism_break")
FUNCTIONS = ("tanh", "sin", "softplus")
START = pd.Timestamp("2024-01-01")
_BURN_IN = 200  # rows simulated and dropped so the series starts in its stationary regime
_ROWS_PER_ANOMALY = 500  # default density of anomalies in the test part


def make_synthetic(
    n_metrics: int = 8,
    n_rows: int = 6000,
    random_state: int | np.random.Generator | None = None,
    *,
    train_fraction: float = 0.5,
    max_lag: int = 3,
    edge_prob: float | None = None,
    n_anomalies: int | None = None,
    anomaly_kinds: Sequence[str] = ANOMALY_KINDS,
    noise: float = 0.1,
    seasonality: float = 1.0,
    freq: str = "1min",
) -> Dataset:
    """Generate a series from a random nonlinear lagged causal model, with anomalies of known root cause.

    Parameters
    ----------
    n_metrics
        Number of metrics (columns ``x0`` … ``x{n-1}``).
    n_rows
        Total rows; the first ``train_fraction`` of them form the anomaly-free training part.
    random_state
        Seed or numpy Generator; the same seed gives the same dataset.
    train_fraction
        Share of rows in the training part, in (0, 1).
    max_lag
        Largest edge lag; each edge's lag is drawn uniformly from ``0 … max_lag``.
    edge_prob
        Probability of an edge from each metric to each later one in the topological order; default
        ``min(1, 3 / n_metrics)`` (about 1.5 parents per metric). When positive, at least one edge exists.
    n_anomalies
        Number of injected anomalies, all in the test part; default one per 500 test rows and at least one
        per kind. When it is at least ``len(anomaly_kinds)`` every kind appears.
    anomaly_kinds
        Kinds to inject, among ``"spike"`` (1–3 rows offset by 5–8 training standard deviations),
        ``"level_shift"`` (10–60 rows offset by 3–5 standard deviations), ``"contextual"`` (the seasonal
        phase of a seasonal metric shifted by about half a period, for an eighth to a quarter of a period:
        values in the normal range at the wrong time) and ``"mechanism_break"`` (for 20–80 rows a metric with
        parents ignores them: its parent term is replaced by a stretch of the same term from the training
        rows, the one among 8 random stretches that differs most from the current values).
        Targets are drawn among the metrics that have children when there are any, so effects propagate.
        With the default set, kinds the model cannot show (contextual without seasonality, mechanism
        break without edges) are left out; asking for them explicitly raises ParameterError.
    noise
        Scale of the innovation noise (each metric's standard deviation is ``noise`` × U(0.5, 1.5)).
    seasonality
        Amplitude scale of the sines on parentless metrics (× U(0.5, 1.5)); 0 disables them.
    freq
        Frequency of the DatetimeIndex, which starts at 2024-01-01.

    Returns
    -------
    Dataset
        ``graph`` lists the true edges ``cause, effect, lag, weight`` plus a ``self_loop`` column: rows with
        ``self_loop`` True (``cause == effect``, lag 1, weight ``a_j``) are each metric's autoregression
        (of its state ``h_j``, see the module docstring);
        ``weight`` of other rows is the coefficient inside the weighted sum, before the nonlinearity.
        ``root_causes`` has one row per anomaly: ``start``, ``end`` (test positions, half-open), ``metrics``
        (the one metric whose own equation was changed) and ``kind``. ``labels`` are 1 exactly on those
        segments; effects that spill over (descendants reacting up to ``max_lag`` rows later, autoregressive
        tails) are not labelled. With the same seed, the dataset generated with ``n_anomalies=0`` is this
        one without anomalies: the rows before the first anomaly are identical, and so are the metrics that
        neither are a root cause nor descend from one.
    """
    n_metrics = _int_param("n_metrics", n_metrics, 1)
    n_rows = _int_param("n_rows", n_rows, 20)
    max_lag = _int_param("max_lag", max_lag, 0)
    if not 0.0 < float(train_fraction) < 1.0:
        raise ParameterError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    n_train = round(n_rows * float(train_fraction))
    if n_train < 10 or n_rows - n_train < 10:
        raise ParameterError(
            f"train_fraction {train_fraction} leaves fewer than 10 rows in a part of {n_rows}"
        )
    if edge_prob is None:
        edge_prob = min(1.0, 3.0 / n_metrics)
    if not 0.0 <= float(edge_prob) <= 1.0:
        raise ParameterError(f"edge_prob must be in [0, 1], got {edge_prob!r}")
    for label, value in (("noise", noise), ("seasonality", seasonality)):
        if not (np.isfinite(value) and value >= 0):
            raise ParameterError(f"{label} must be a finite number >= 0, got {value!r}")
    kinds = _kinds_param(anomaly_kinds)
    n_test = n_rows - n_train
    if n_anomalies is not None:
        n_anomalies = _int_param("n_anomalies", n_anomalies, 0)
    try:
        index = pd.date_range(START, periods=n_rows, freq=freq)
    except (ValueError, TypeError) as exc:
        raise ParameterError(f"freq {freq!r} is not a pandas frequency: {exc}") from exc

    rng = np.random.default_rng(random_state)
    # Everything that defines the normal series is drawn first, so that the anomaly draws below never
    # change it: the same seed with n_anomalies=0 gives the clean counterpart.
    model = _draw_model(rng, n_metrics, n_rows, max_lag, float(edge_prob), float(noise), float(seasonality))
    if anomaly_kinds is ANOMALY_KINDS:  # the default set: leave out kinds this model cannot show
        kinds = tuple(k for k in kinds if _targets(model)[k].size) or kinds
    if n_anomalies is None:
        n_anomalies = max(len(kinds), n_test // _ROWS_PER_ANOMALY)
    clean, stats = _simulate(model, n_train, anomalies=[])
    std = clean[:n_train].std(axis=0)
    stats["x_std"] = np.where(std > 0, std, 1.0)
    anomalies = _draw_anomalies(rng, model, stats, n_train, n_rows, n_anomalies, kinds, max_lag)
    values = _simulate(model, n_train, anomalies, stats)[0] if anomalies else clean

    columns = [f"x{j}" for j in range(n_metrics)]
    frame = pd.DataFrame(values, index=index, columns=columns)
    spans = [(a["start"] - n_train, a["end"] - n_train) for a in anomalies]
    test = frame.iloc[n_train:]
    root_causes = pd.DataFrame(
        {
            "start": pd.Series([s for s, _ in spans], dtype=np.int64),
            "end": pd.Series([e for _, e in spans], dtype=np.int64),
            "metrics": [[columns[a["metric"]]] for a in anomalies],
            "kind": pd.Series([a["kind"] for a in anomalies], dtype=object),
        }
    )
    return Dataset(
        name=f"synthetic/{n_metrics}x{n_rows}",
        train=frame.iloc[:n_train],
        test=test,
        labels=pd.Series(labels_from_segments(n_test, spans), index=test.index, name="label"),
        root_causes=root_causes,
        graph=_graph_frame(model, columns),
        metadata={
            "source": "tsdiff.datasets.make_synthetic",
            "params": {
                "n_metrics": n_metrics,
                "n_rows": n_rows,
                "train_fraction": float(train_fraction),
                "max_lag": max_lag,
                "edge_prob": float(edge_prob),
                "n_anomalies": n_anomalies,
                "anomaly_kinds": list(kinds),
                "noise": float(noise),
                "seasonality": float(seasonality),
                "freq": freq,
            },
            "topological_order": [columns[j] for j in model["order"]],
            "mechanisms": _mechanism_frame(model, stats, columns),
            "anomalies": [
                {k: v for k, v in a.items() if k not in ("start", "end", "metric")}
                | {"metric": columns[a["metric"]]}
                for a in anomalies
            ],
            "label_policy": "1 where an injection is active; spill-over to descendants is unlabelled",
        },
    )


# ------------------------------------------------------------------------------------------- the model
def _draw_model(
    rng: np.random.Generator,
    n: int,
    n_rows: int,
    max_lag: int,
    edge_prob: float,
    noise: float,
    seasonality: float,
) -> dict[str, Any]:
    order = rng.permutation(n)
    first, second = np.triu_indices(n, k=1)  # positions in the order; every edge goes forward
    n_pairs = len(first)
    draw = rng.random(n_pairs)
    lags = rng.integers(0, max_lag + 1, n_pairs)
    weights = rng.choice((-1.0, 1.0), n_pairs) * rng.uniform(0.5, 1.5, n_pairs)
    keep = draw < edge_prob
    if edge_prob > 0 and n_pairs and not keep.any():
        keep[np.argmin(draw)] = True
    edges = [
        (int(order[first[k]]), int(order[second[k]]), int(lags[k]), float(weights[k]))
        for k in np.flatnonzero(keep)
    ]
    has_parent = np.zeros(n, dtype=bool)
    for _, effect, _, _ in edges:
        has_parent[effect] = True
    low = max(24, n_rows // 100)
    return {
        "n": n,
        "order": [int(j) for j in order],
        "edges": edges,
        "ar": rng.uniform(0.3, 0.85, n),
        "function": rng.integers(0, len(FUNCTIONS), n),
        "gain": rng.choice((-1.0, 1.0), n) * rng.uniform(0.8, 1.5, n),
        "sigma": noise * rng.uniform(0.5, 1.5, n),
        "amplitude": np.where(has_parent, 0.0, seasonality * rng.uniform(0.5, 1.5, n)),
        "period": rng.uniform(low, max(2 * low, n_rows // 25), n),
        "phase": rng.uniform(0.0, 2 * np.pi, n),
        "eps": rng.standard_normal((_BURN_IN + n_rows, n)),
        "has_parent": has_parent,
    }


def _apply(function: int, z: np.ndarray) -> np.ndarray:
    name = FUNCTIONS[function]
    if name == "tanh":
        return np.tanh(z)
    if name == "sin":
        return np.sin(z)
    return np.logaddexp(0.0, z) - np.log(2.0)  # softplus, 0 at 0


def _simulate(
    model: dict[str, Any], n_train: int, anomalies: list[dict[str, Any]], stats: dict[str, Any] | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Simulate all rows (burn-in dropped); ``stats`` (input scaling, clean parent terms) come from the
    clean run and are reused so the anomalous run differs only where anomalies act."""
    eps = model["eps"]
    n_total = eps.shape[0]
    n = model["n"]
    t = np.arange(n_total, dtype=np.float64) - _BURN_IN
    train_rows = slice(_BURN_IN, _BURN_IN + n_train)
    fresh = stats is None
    if fresh:
        stats = {"mu": np.zeros(n), "sd": np.ones(n), "term": {}}
    by_metric: dict[int, list[dict[str, Any]]] = {}
    for anomaly in anomalies:
        by_metric.setdefault(anomaly["metric"], []).append(anomaly)
    parents: dict[int, list[tuple[int, int, float]]] = {}
    for cause, effect, lag, weight in model["edges"]:
        parents.setdefault(effect, []).append((cause, lag, weight))

    x = np.zeros((n_total, n))
    for j in model["order"]:
        term = np.zeros(n_total)
        if j in parents:
            raw = np.zeros(n_total)
            for cause, lag, weight in parents[j]:
                raw[lag:] += weight * x[: n_total - lag, cause]
            if fresh:
                stats["mu"][j] = raw[train_rows].mean()
                stats["sd"][j] = raw[train_rows].std() or 1.0
            term = model["gain"][j] * _apply(model["function"][j], (raw - stats["mu"][j]) / stats["sd"][j])
            if fresh:
                stats["term"][j] = term.copy()
        seasonal = model["amplitude"][j] * np.sin(2 * np.pi * t / model["period"][j] + model["phase"][j])
        offset = np.zeros(n_total)
        for a in by_metric.get(j, []):
            rows = slice(a["start"] + _BURN_IN, a["end"] + _BURN_IN)
            if a["kind"] in ("spike", "level_shift"):
                offset[rows] += a["magnitude"]
            elif a["kind"] == "contextual":
                seasonal[rows] = model["amplitude"][j] * np.sin(
                    2 * np.pi * t[rows] / model["period"][j] + model["phase"][j] + a["phase_shift"]
                )
            else:  # mechanism_break: the parent term replays an earlier stretch of the clean one
                source = a["source_start"] + _BURN_IN
                term[rows] = stats["term"][j][source : source + (a["end"] - a["start"])]
        state = ar1_filter(term + model["sigma"][j] * eps[:, j], model["ar"][j])
        x[:, j] = state + seasonal + offset
    return x[_BURN_IN:], stats


def ar1_filter(u: np.ndarray, a: float, block: int = 64) -> np.ndarray:
    """``h[t] = a * h[t - 1] + u[t]`` with ``h[-1] = 0``, for ``0 < a < 1``.

    Within a block of rows ``h[t] = a**t * cumsum(u[i] * a**-i)`` is exact; blocks are short so that
    ``a**-i`` stays far from overflow, and each block starts from the last value of the previous one.
    """
    n = len(u)
    powers = float(a) ** np.arange(block + 1)
    inverse = 1.0 / powers[:block]
    out = np.empty(n)
    carry = 0.0
    for start in range(0, n, block):
        piece = u[start : start + block]
        m = len(piece)
        out[start : start + m] = powers[:m] * np.cumsum(piece * inverse[:m]) + carry * powers[1 : m + 1]
        carry = out[start + m - 1]
    return out


# ------------------------------------------------------------------------------------------- anomalies
def _draw_anomalies(
    rng: np.random.Generator,
    model: dict[str, Any],
    stats: dict[str, Any],
    n_train: int,
    n_rows: int,
    n_anomalies: int,
    kinds: tuple[str, ...],
    max_lag: int,
) -> list[dict[str, Any]]:
    if n_anomalies == 0:
        return []
    candidates = _targets(model)
    for kind in kinds:
        if len(candidates[kind]) == 0:
            reason = "seasonality is 0" if kind == "contextual" else "the graph has no edge"
            raise ParameterError(f"cannot inject {kind!r} anomalies: {reason}")

    if n_anomalies >= len(kinds):
        chosen = [kinds[k % len(kinds)] for k in range(n_anomalies)]
        chosen = [chosen[k] for k in rng.permutation(n_anomalies)]
    else:
        chosen = [kinds[k] for k in rng.choice(len(kinds), n_anomalies, replace=False)]

    n_test = n_rows - n_train
    slot = n_test // n_anomalies
    gap = 2 * max_lag + 8  # quiet rows after each segment so spill-over does not reach the next one
    if slot < gap + 2:
        raise ParameterError(
            f"{n_anomalies} anomalies do not fit in {n_test} test rows (each needs {gap + 2}); "
            "use more rows or fewer anomalies"
        )
    std = stats["x_std"]
    out = []
    for k, kind in enumerate(chosen):
        metric = int(rng.choice(candidates[kind]))
        usable = slot - gap
        if kind == "spike":
            length = int(rng.integers(1, 4))
        elif kind == "level_shift":
            length = int(rng.integers(10, 61))
        elif kind == "contextual":
            period = model["period"][metric]
            length = int(rng.integers(int(period / 8), int(period / 4) + 1))
        else:
            length = int(rng.integers(20, 81))
        length = max(1, min(length, usable // 2, n_train - 1))
        start = n_train + k * slot + int(rng.integers(0, usable - length + 1))
        anomaly: dict[str, Any] = {"kind": kind, "metric": metric, "start": start, "end": start + length}
        if kind == "spike":
            anomaly["magnitude"] = float(rng.choice((-1.0, 1.0)) * rng.uniform(5, 8) * std[metric])
        elif kind == "level_shift":
            anomaly["magnitude"] = float(rng.choice((-1.0, 1.0)) * rng.uniform(3, 5) * std[metric])
        elif kind == "contextual":
            anomaly["phase_shift"] = float(rng.uniform(0.75 * np.pi, 1.25 * np.pi))
        else:
            # Replay the training stretch (best of a few random ones) that differs most from what the
            # parents would have produced, so the break is visible though every value stays typical.
            term = stats["term"][metric][_BURN_IN:]
            sources = rng.integers(0, n_train - length + 1, 8)
            actual = term[start : start + length]
            gaps = [np.abs(term[s : s + length] - actual).mean() for s in sources]
            anomaly["source_start"] = int(sources[int(np.argmax(gaps))])
        out.append(anomaly)
    return out


def _targets(model: dict[str, Any]) -> dict[str, np.ndarray]:
    """Metrics each kind of anomaly may hit: seasonal ones for contextual, ones with parents for a
    mechanism break; among those, the ones with children when there are any."""
    n = model["n"]
    children = np.zeros(n, dtype=bool)
    for cause, _, _, _ in model["edges"]:
        children[cause] = True
    return {
        "spike": _prefer(np.arange(n), children),
        "level_shift": _prefer(np.arange(n), children),
        "contextual": _prefer(np.flatnonzero(model["amplitude"] > 0), children),
        "mechanism_break": _prefer(np.flatnonzero(model["has_parent"]), children),
    }


def _prefer(pool: np.ndarray, flag: np.ndarray) -> np.ndarray:
    """The members of ``pool`` with ``flag`` set, or all of ``pool`` when none is."""
    flagged = pool[flag[pool]] if len(pool) else pool
    return flagged if len(flagged) else pool


# -------------------------------------------------------------------------------------------- outputs
def _graph_frame(model: dict[str, Any], columns: list[str]) -> pd.DataFrame:
    rows = [(columns[c], columns[e], lag, w, False) for c, e, lag, w in model["edges"]]
    rows += [(columns[j], columns[j], 1, float(model["ar"][j]), True) for j in range(model["n"])]
    graph = pd.DataFrame(rows, columns=["cause", "effect", "lag", "weight", "self_loop"])
    graph = graph.astype(
        {"cause": object, "effect": object, "lag": np.int64, "weight": np.float64, "self_loop": bool}
    )
    return graph.sort_values(["self_loop", "effect", "cause"], kind="stable").reset_index(drop=True)


def _mechanism_frame(model: dict[str, Any], stats: dict[str, Any], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "function": [
                FUNCTIONS[f] if model["has_parent"][j] else None for j, f in enumerate(model["function"])
            ],
            "gain": np.where(model["has_parent"], model["gain"], 0.0),
            "ar": model["ar"],
            "noise_std": model["sigma"],
            "input_mean": stats["mu"],
            "input_std": stats["sd"],
            "seasonal_amplitude": model["amplitude"],
            "seasonal_period": np.where(model["amplitude"] > 0, model["period"], np.nan),
            "seasonal_phase": np.where(model["amplitude"] > 0, model["phase"], np.nan),
        },
        index=pd.Index(columns, name="metric"),
    )


def _int_param(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _kinds_param(kinds: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(kinds, str):
        kinds = (kinds,)
    out = tuple(dict.fromkeys(str(k) for k in kinds))
    unknown = [k for k in out if k not in ANOMALY_KINDS]
    if unknown or not out:
        raise ParameterError(
            f"anomaly_kinds must be a non-empty subset of {ANOMALY_KINDS}, got {list(kinds)!r}"
        )
    return out
