"""Explaining an anomaly: per-metric evidence, causal roles, and a ranked table.

Two channels per metric:

* *deviation*: how far its value is from its training median, in standard deviations of its
  training values; a per-metric level marks it as deviating at the same rarity on held-out
  normal rows as a violation of the level;
* *violation*: how badly it breaks its own mechanism: the robust z of its residual over a spread
  calibrated on held-out normal rows (:func:`calibrated_spread`), so a violation of 3 is about
  equally rare for every metric. A metric constant in training has no mechanism: its change is a
  deviation, never a violation.

An event's metrics are ranked twice. ``affected`` orders every metric by its largest deviation
over the event (what moved most, in its own units of normal variation). ``root_causes`` orders
the involved metrics (either channel beyond its level) by causal role:

1. *origin candidate*: its mechanism broke (violation above the level on some event row) and no
   involved ancestor in the learned graph (oriented edges, any path length) explains it;
2. *unexplained*: it deviates and nothing upstream explains it, yet its own mechanism holds
   (a cause the model does not see, or a change its own past carries along);
3. *explained by X at lag k*: an involved ancestor ``X`` started early enough to have caused it
   (its onset plus the shortest path lag ``k`` from it is no later than this metric's onset); a
   duplicate metric is explained by its twin at lag 0.

This is the descendant adjustment of regression-based root-cause tests: a metric whose residual
given its causes is anomalous is a candidate, and a candidate downstream of an earlier one is
explained by it. Within a role, metrics are ordered by their peak violation. Onsets are searched
from before the event (by the model's lag and smoothing): the first row where the metric's
evidence, over its level, crosses 1 and mostly stays above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tsdiff.frame import centered_mean

#: share of held-out normal cells a calibrated channel puts beyond :data:`TAIL_Z`
TAIL = 0.01
TAIL_Z = 2.5758293035489004  # the normal quantile 1 - TAIL / 2
MAD_TO_SD = 1.4826
#: rows the onset search smooths over, and rows after a crossing checked for persistence
ONSET_SMOOTH, ONSET_PERSIST = 3, 5

ROLE_ORIGIN = "origin candidate"
ROLE_UNEXPLAINED = "unexplained"
ROLE_EXPLAINED = "explained"
#: the colour of each role in :meth:`Explanation.plot`
ROLE_COLOURS = {ROLE_ORIGIN: "#e4572e", ROLE_UNEXPLAINED: "#f3a712", ROLE_EXPLAINED: "#a8c5da"}
TABLE_COLUMNS = [
    "metric",
    "role",
    "explained_by",
    "lag",
    "onset",
    "deviation",
    "direction",
    "violation",
    "mean_violation",
    "strength",
]


def calibrated_spread(deviations: np.ndarray, floor: float) -> np.ndarray:
    """Per column, the spread that puts ``|deviations| / spread`` on a Gaussian-equivalent z scale.

    The spread is the largest of the MAD (x 1.4826), the held-out ``1 - TAIL`` quantile of the
    absolute deviations over :data:`TAIL_Z` (so at most a share ``TAIL`` of these rows lies beyond
    z = 2.58 for every metric, heavy-tailed or sparse) and ``floor`` (a metric that barely moves
    on these rows). NaN cells are ignored; an all-NaN column gets ``floor``.
    """
    a = np.abs(np.asarray(deviations, dtype=np.float64))
    out = np.full(a.shape[1], float(floor))
    for j in range(a.shape[1]):
        col = a[:, j][np.isfinite(a[:, j])]
        if len(col):
            mad = float(np.median(col)) * MAD_TO_SD
            tail = float(np.quantile(col, 1.0 - TAIL)) / TAIL_Z
            out[j] = max(mad, tail, float(floor))
    return out


def lag_ancestry(edges: list[tuple[int, int, int, bool]], n_metrics: int) -> np.ndarray:
    """``d[i, j]``: shortest total lag of a path ``i -> ... -> j`` over oriented edges (inf: none).

    Self-loops are ignored and a metric is not its own ancestor (``d[i, i]`` is inf).
    """
    d = np.full((n_metrics, n_metrics), np.inf)
    for cause, effect, lag, oriented in edges:
        if oriented and cause != effect:
            d[cause, effect] = min(d[cause, effect], float(lag))
    for m in range(n_metrics):
        d = np.minimum(d, d[:, m : m + 1] + d[m : m + 1, :])
    np.fill_diagonal(d, np.inf)
    return d


def short_mean(evidence: np.ndarray) -> np.ndarray:
    """The ``ONSET_SMOOTH``-row centred moving mean of ``evidence`` (rows, K), NaN as 0."""
    evidence = np.nan_to_num(evidence)
    return centered_mean(evidence, ONSET_SMOOTH) if len(evidence) > 1 else evidence


def onset_rows(e: np.ndarray, level: float) -> np.ndarray:
    """Per column of ``e`` (rows, K: evidence after :func:`short_mean`), the first row where it
    crosses ``level`` and stays above it in most of the next rows; the row of its maximum when
    none does."""
    above = e > level
    n = len(e)
    # share of rows above the level among each row and the ONSET_PERSIST - 1 after it
    counts = np.vstack([np.zeros((1, e.shape[1])), np.cumsum(above, axis=0)])
    stop = np.minimum(np.arange(n) + ONSET_PERSIST, n)
    share = (counts[stop] - counts[:n]) / (stop - np.arange(n))[:, None]
    onset = above & (share >= 0.6)
    out = np.where(onset.any(axis=0), np.argmax(onset, axis=0), np.argmax(e, axis=0))
    return out.astype(np.int64)


@dataclass
class Explanation:
    """Why one stretch of rows is anomalous, metric by metric.

    Attributes
    ----------
    start, end
        First and last row of the event (index labels, inclusive).
    table
        One row per involved metric (a channel beyond its level; at least the most deviating
        one), in ``root_causes`` order: ``metric``, ``role`` (``"origin candidate"``,
        ``"unexplained"`` or ``"explained"``), ``explained_by`` and ``lag`` (the ancestor that
        explains it and the shortest path lag from it; empty and NaN otherwise), ``onset`` (index
        label where its evidence first persistently crossed its level), ``deviation`` (largest
        deviation over the event, in training standard deviations) and ``direction``
        (``"up"``/``"down"``), ``violation`` and ``mean_violation`` (largest and mean calibrated
        violation over the event), ``strength`` (largest evidence over its level, short moving
        mean) and ``onset_row`` (the onset's row position).
    root_causes
        Every metric: the involved ones first (the table's metrics, likely origins first), then
        the others by their largest deviation; empty when the rows hold no evidence at all.
    affected
        Every metric, by decreasing largest deviation.
    graph
        The learned graph restricted to the involved metrics (edges among them).
    level
        The calibrated level above which a channel counts.
    """

    start: Any
    end: Any
    table: pd.DataFrame
    root_causes: list[Any]
    affected: list[Any]
    graph: Any = None
    level: float = 3.0

    @property
    def involved(self) -> int:
        """How many metrics are involved (beyond their level): the first ones of ``root_causes``."""
        return len(self.table)

    def role_text(self, row: Any) -> str:
        if row.role == ROLE_EXPLAINED:
            return f"explained by {row.explained_by} at lag {int(row.lag)}"
        return str(row.role)

    def to_text(self, max_rows: int = 20) -> str:
        """A plain-text report: the event, its likely origins, and the ranked table."""
        origins = self.root_causes[: min(5, max(1, self.involved))]
        lines = [
            f"event {self.start} .. {self.end}",
            f"root causes: {', '.join(map(str, origins)) or '(none)'}",
            f"most affected: {', '.join(map(str, self.affected[:5]))}",
            "",
        ]
        shown = self.table.head(max_rows)
        header = f"{'metric':<24} {'deviation':>10} {'dir':>4} {'violation':>10}  {'onset':<26} role"
        lines.append(header)
        for row in shown.itertuples(index=False):
            lines.append(
                f"{str(row.metric)[:24]:<24} {row.deviation:>10.2f} {row.direction:>4} "
                f"{row.violation:>10.2f}  {str(row.onset)[:26]:<26} {self.role_text(row)}"
            )
        if len(self.table) > max_rows:
            lines.append(f"... {len(self.table) - max_rows} more involved metrics")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def to_dot(self, name: str = "event") -> str:
        """Graphviz DOT of the event's subgraph: nodes shaded by onset (earliest lightest, the
        latest darkest), labelled with their role; edges labelled ``lag / strength``."""
        from tsdiff.causal.graph import dot_id, dot_text

        order = {m: i for i, m in enumerate(self.table["metric"])}
        rank = _onset_rank(self.table)
        lines = [
            f"digraph {dot_id(name)} {{",
            "  rankdir=LR;",
            "  node [shape=box, style=filled, fontsize=10];",
        ]
        for row in self.table.itertuples(index=False):
            shade = 95 - int(40 * rank[row.metric])
            label = f"{dot_text(row.metric)}\\n{dot_text(self.role_text(row))}"
            lines.append(f'  {dot_id(row.metric)} [label="{label}", fillcolor="gray{shade}"];')
        if self.graph is not None:
            for e in self.graph.edges.itertuples(index=False):
                if e.cause == e.effect or e.cause not in order or e.effect not in order:
                    continue
                arrow = "" if e.oriented else ", dir=none"
                lines.append(
                    f"  {dot_id(e.cause)} -> {dot_id(e.effect)} "
                    f'[label="{int(e.lag)} / {float(e.strength):.2f}"{arrow}];'
                )
        lines.append("}")
        return "\n".join(lines)

    def plot(self, ax: Any = None, max_metrics: int = 12) -> Any:
        """Draw the event's subgraph in layers, causes above their effects (edges labelled
        ``lag / strength``); each metric coloured by its role (origin candidate, unexplained,
        explained) and drawn larger the further it moved. The first ``max_metrics`` metrics of
        the table are drawn (the title says how many were left out). Returns the axes."""
        import matplotlib.pyplot as plt

        from tsdiff.causal.graph import draw_edge, frame_axes, layered_positions
        from tsdiff.plot import literal

        table = self.table.head(int(max_metrics))
        metrics = list(table["metric"])
        deviation = dict(zip(metrics, table["deviation"].astype(float), strict=True))
        edges = []
        if self.graph is not None:
            edges = [
                e
                for e in self.graph.edges.itertuples(index=False)
                if e.cause != e.effect and e.cause in deviation and e.effect in deviation
            ]
        pos, size = layered_positions(metrics, [(e.cause, e.effect) for e in edges], weight=deviation)
        if ax is None:
            _, ax = plt.subplots(figsize=(min(4 + 1.4 * size[0], 18), min(2.5 + 1.2 * size[1], 14)))
        for e in edges:
            draw_edge(
                ax, pos[e.cause], pos[e.effect], e, f"{int(e.lag)} / {float(e.strength):.2f}", 14, False
            )
        roles = dict(zip(table["metric"], table["role"], strict=True))
        top = max(deviation.values(), default=1.0) or 1.0
        for m, (x, y) in pos.items():
            ax.text(
                x,
                y,
                literal(m),
                ha="center",
                va="center",
                fontsize=7 + 5 * min(deviation[m] / top, 1.0),
                fontweight="bold" if roles[m] == ROLE_ORIGIN else "normal",
                bbox={"boxstyle": "round", "fc": ROLE_COLOURS.get(roles[m], "0.9"), "alpha": 0.85},
            )
        frame_axes(ax, pos)
        for role, colour in ROLE_COLOURS.items():  # the legend of the colours
            ax.scatter([], [], marker="s", s=60, color=colour, label=role)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, -0.08), ncol=3, fontsize=7, frameon=False)
        left = len(self.table) - len(table)
        more = f"; {left} more metrics in the table" if left else ""
        ax.set_title(
            literal(
                f"event {self.start} .. {self.end}: causes above effects (edge: lag / strength; "
                f"size: deviation){more}"
            ),
            fontsize=9,
        )
        return ax

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        rows = []
        for row in self.table.itertuples(index=False):
            rows.append(
                {
                    "metric": row.metric,
                    "role": self.role_text(row),
                    "onset": str(row.onset),
                    "deviation": float(row.deviation),
                    "direction": row.direction,
                    "violation": float(row.violation),
                    "mean_violation": float(row.mean_violation),
                }
            )
        return {
            "start": str(self.start),
            "end": str(self.end),
            "root_causes": list(self.root_causes),
            "affected": list(self.affected),
            "metrics": rows,
        }


def _onset_rank(table: pd.DataFrame) -> dict[Any, float]:
    """Metric -> its onset's place among the table's distinct onsets, 0 (first) .. 1 (last)."""
    onsets = sorted(set(table["onset_row"]))
    place = {t: (i / (len(onsets) - 1) if len(onsets) > 1 else 0.0) for i, t in enumerate(onsets)}
    return {m: place[t] for m, t in zip(table["metric"], table["onset_row"], strict=True)}


def explain_rows(
    violation: np.ndarray,
    deviation: np.ndarray,
    signed: np.ndarray,
    event: slice,
    names: list[Any],
    ancestry: np.ndarray,
    duplicate_of: dict[int, int],
    level: float,
    deviation_level: np.ndarray,
    lookback: int,
    index: Any = None,
    graph: Any = None,
) -> Explanation:
    """Explain rows ``event`` of per-row evidence.

    Parameters
    ----------
    violation
        (n, K) calibrated mechanism violation per row (0 where a metric has no mechanism).
    deviation, signed
        (n, K) deviation of each value per row, in standard deviations of its training values:
        absolute, and signed (its direction).
    event
        Rows of the event; the onset search starts ``lookback`` rows before it.
    names
        Metric names.
    ancestry
        :func:`lag_ancestry` over the metrics' positions.
    duplicate_of
        Position -> position of its twin, for duplicate metrics.
    level
        Calibrated violation level above which a mechanism counts as broken.
    deviation_level
        (K,) deviation above which each metric counts as deviating, calibrated to the same rarity.
    index
        Row labels (for ``start``, ``end`` and onsets); positions when None.
    graph
        The model's :class:`~tsdiff.causal.graph.CausalGraph`, restricted to the involved metrics.
    """
    a, b = int(event.start), int(event.stop)
    lo = max(0, a - int(lookback))
    viol = np.nan_to_num(violation[a:b])
    dev = np.nan_to_num(deviation[a:b])
    dev_level = np.asarray(deviation_level, dtype=np.float64)
    mean_viol, peak_dev = viol.mean(axis=0), dev.max(axis=0)
    direction = np.where(np.nan_to_num(signed[a:b]).mean(axis=0) >= 0, "up", "down")
    # both channels over the window, in units of their levels (1 = at the level)
    window = np.maximum(np.nan_to_num(violation[lo:b]) / level, np.nan_to_num(deviation[lo:b]) / dev_level)
    short = short_mean(window)
    onset = lo + onset_rows(short, 1.0)
    strength = short[a - lo :].max(axis=0)
    peak_viol = viol.max(axis=0)
    violated = peak_viol > level
    affected = [int(j) for j in np.argsort(-peak_dev, kind="stable")]
    involved = [int(j) for j in np.argsort(-strength, kind="stable") if strength[j] > 1.0 or violated[j]]
    if not involved and peak_dev[affected[0]] > 0:  # nothing beyond its level: the one that moved most
        involved = affected[:1]
    # roles in onset order (ties: stronger first); an explainer is always settled before the
    # metric it explains, so two metrics never explain each other
    roles: dict[int, tuple[str, int | None, float]] = {}
    for j in sorted(involved, key=lambda j: (onset[j], -strength[j])):
        twin = duplicate_of.get(j)
        if twin is not None and twin in roles:
            roles[j] = (ROLE_EXPLAINED, twin, 0.0)
            continue
        # an ancestor explains j when its onset plus the path's lag is no later than j's onset
        explainers = [i for i in roles if onset[i] + ancestry[i, j] <= onset[j]]
        if explainers:
            best = min(explainers, key=lambda i: (roles[i][0] != ROLE_ORIGIN, onset[i], -strength[i]))
            roles[j] = (ROLE_EXPLAINED, best, float(ancestry[best, j]))
        else:
            roles[j] = (ROLE_ORIGIN if violated[j] else ROLE_UNEXPLAINED, None, math.nan)
    group = {ROLE_ORIGIN: 0, ROLE_UNEXPLAINED: 1, ROLE_EXPLAINED: 2}
    ranked = sorted(involved, key=lambda j: (group[roles[j][0]], -peak_viol[j], -strength[j]))

    def label(row: int) -> Any:
        return index[row] if index is not None else row

    table = pd.DataFrame(
        [
            {
                "metric": names[j],
                "role": roles[j][0],
                "explained_by": names[roles[j][1]] if roles[j][1] is not None else "",
                "lag": roles[j][2],
                "onset": label(int(onset[j])),
                "deviation": float(peak_dev[j]),
                "direction": str(direction[j]),
                "violation": float(peak_viol[j]),
                "mean_violation": float(mean_viol[j]),
                "strength": float(strength[j]),
                "onset_row": int(onset[j]),
            }
            for j in ranked
        ],
        columns=[*TABLE_COLUMNS, "onset_row"],
    )
    sub = None
    if graph is not None:
        keep = set(table["metric"])
        edges = graph.edges[graph.edges["cause"].isin(keep) & graph.edges["effect"].isin(keep)]
        sub = type(graph)(edges, list(table["metric"]))
    involved_names = list(table["metric"])
    rest = [names[j] for j in affected if names[j] not in set(involved_names)] if involved_names else []
    return Explanation(
        start=label(a),
        end=label(b - 1),
        table=table,
        root_causes=involved_names + rest,
        affected=[names[j] for j in affected],
        graph=sub,
        level=float(level),
    )
