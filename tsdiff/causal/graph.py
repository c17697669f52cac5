"""A learned lagged causal graph over metrics: an edge table with DOT export and a plot."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

EDGE_COLUMNS = ["cause", "effect", "lag", "strength", "oriented"]


class CausalGraph:
    """Edges ``cause -> effect`` at a time lag, learned from data.

    Attributes
    ----------
    edges
        DataFrame with columns ``cause``, ``effect``, ``lag`` (0 = same timestamp), ``strength``
        (absolute standardised coefficient of the cause in the effect's mechanism, 0..), and
        ``oriented`` (False for a same-time edge whose direction the data could not settle; such an
        edge is listed in both directions).
    metrics
        Every metric of the data, including those with no edge.
    """

    def __init__(self, edges: pd.DataFrame, metrics: list[Any]) -> None:
        missing = [c for c in EDGE_COLUMNS if c not in edges.columns]
        if missing:
            raise ValueError(f"edge table lacks column(s) {missing}")
        self.edges = edges[EDGE_COLUMNS].reset_index(drop=True)
        self.metrics = list(metrics)

    def parents(self, effect: Any) -> pd.DataFrame:
        """Edges into ``effect`` (cause, lag, strength, oriented), strongest first."""
        rows = self.edges[self.edges["effect"] == effect]
        return rows.sort_values("strength", ascending=False).reset_index(drop=True)

    def causes_of(self, effect: Any, include_self: bool = False) -> set[Any]:
        """Distinct metrics with an edge into ``effect`` (its own past excluded unless asked)."""
        causes = set(self.edges.loc[self.edges["effect"] == effect, "cause"])
        if not include_self:
            causes.discard(effect)
        return causes

    def to_frame(self) -> pd.DataFrame:
        """The edge table (a copy)."""
        return self.edges.copy()

    def to_dot(self, name: str = "causal_graph", min_strength: float = 0.0) -> str:
        """Graphviz DOT text: one node per metric, edges labelled with their lag.

        Same-time edges are solid, lagged ones dashed, unoriented ones drawn without arrowheads;
        self-loops (a metric's own past) are left out.
        """
        lines = [f"digraph {dot_id(name)} {{", "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
        lines += [f"  {dot_id(m)};" for m in self.metrics]
        shown = self.edges[
            (self.edges["cause"] != self.edges["effect"]) & (self.edges["strength"] >= min_strength)
        ]
        done: set[tuple] = set()
        for row in shown.itertuples(index=False):
            key = (row.cause, row.effect, row.lag)
            if not row.oriented:
                key = (*sorted((str(row.cause), str(row.effect))), row.lag)
                if key in done:
                    continue
            done.add(key)
            style = "solid" if row.lag == 0 else "dashed"
            arrow = ", dir=none" if not row.oriented else ""
            width = 0.5 + 2.5 * min(float(row.strength), 1.0)
            lines.append(
                f"  {dot_id(row.cause)} -> {dot_id(row.effect)} "
                f'[label="{int(row.lag)}", style={style}, penwidth={width:.2f}{arrow}];'
            )
        lines.append("}")
        return "\n".join(lines)

    def plot(self, ax: Any = None, min_strength: float = 0.0) -> Any:
        """Draw the graph with matplotlib in layers, causes above their effects (see
        :func:`layered_positions`), lag on each edge; metrics without an edge in a row of their
        own at the bottom. Self-lags (a metric's own past) are counted in the title, not drawn.
        Returns the axes."""
        import matplotlib.pyplot as plt

        from tsdiff.plot import literal

        between = self.edges[self.edges["cause"] != self.edges["effect"]]
        shown = between[between["strength"] >= min_strength]
        pos, size = layered_positions(self.metrics, list(zip(shown["cause"], shown["effect"], strict=True)))
        if ax is None:
            _, ax = plt.subplots(figsize=(min(4 + 1.1 * size[0], 18), min(2.5 + 1.1 * size[1], 14)))
        for row in shown.itertuples(index=False):
            draw_edge(
                ax, pos[row.cause], pos[row.effect], row, str(int(row.lag)), shrink=10, dash_lagged=True
            )
        linked = set(shown["cause"]) | set(shown["effect"])
        for m, (x, y) in pos.items():
            box = {
                "boxstyle": "round",
                "fc": "w" if m in linked else "0.92",
                "ec": "0.3" if m in linked else "0.7",
            }
            ax.text(x, y, literal(m), ha="center", va="center", fontsize=8, bbox=box)
        frame_axes(ax, pos)
        hidden = len(between) - len(shown)
        parts = [f"{len(shown)} edges between metrics (dashed: lagged; label: lag)"]
        if hidden:
            parts.append(f"{hidden} weaker than {min_strength:g} not drawn")
        parts.append(f"{len(self.edges) - len(between)} self-lags not drawn")
        ax.set_title("; ".join(parts), fontsize=9)
        return ax

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        records = [
            {
                "cause": r.cause,
                "effect": r.effect,
                "lag": int(r.lag),
                "strength": float(r.strength),
                "oriented": bool(r.oriented),
            }
            for r in self.edges.itertuples(index=False)
        ]
        return {"metrics": self.metrics, "edges": records}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> CausalGraph:
        edges = pd.DataFrame(state["edges"], columns=EDGE_COLUMNS)
        return cls(edges.astype({"lag": int, "strength": float, "oriented": bool}), state["metrics"])

    def __len__(self) -> int:
        return len(self.edges)

    def __repr__(self) -> str:
        lagged = int((self.edges["lag"] > 0).sum())
        return f"CausalGraph({len(self.metrics)} metrics, {len(self.edges)} edges, {lagged} lagged)"


def draw_edge(
    ax: Any, start: tuple, end: tuple, edge: Any, label: str, shrink: float, dash_lagged: bool
) -> None:
    """One edge of a graph plot: an arrow (a plain line when unoriented) as thick as the edge is
    strong, dashed when lagged (with ``dash_lagged``), slightly curved (an edge between two
    distant metrics never runs straight through the ones between them, which would read as a
    chain), and ``label`` at its middle."""
    (x0, y0), (x1, y1) = start, end
    style = {"linestyle": "-" if edge.lag == 0 else "--"} if dash_lagged else {}
    ax.annotate(
        "",
        xy=(x1, y1),
        xytext=(x0, y0),
        arrowprops={
            "arrowstyle": "-|>" if edge.oriented else "-",
            **style,
            "lw": 0.5 + 2.0 * min(float(edge.strength), 1.0),
            "alpha": 0.6,
            "shrinkA": shrink,
            "shrinkB": shrink,
            "connectionstyle": f"arc3,rad={CURVE}",
        },
    )
    # the middle of the arc: half the curvature off the chord, on the side arc3 bends it; the
    # label leans outwards, so the labels of a pair of opposite edges never overlap
    ox, oy = CURVE / 2 * (y1 - y0), -CURVE / 2 * (x1 - x0)
    ha = "left" if ox > 1e-9 else "right" if ox < -1e-9 else "center"
    va = "bottom" if oy > 1e-9 else "top" if oy < -1e-9 else "center"
    ax.text((x0 + x1) / 2 + ox, (y0 + y1) / 2 + oy, label, fontsize=7, color="gray", ha=ha, va=va)


#: curvature of drawn edges (matplotlib's ``arc3`` radius)
CURVE = 0.18


def layered_positions(
    nodes: list[Any], edges: list[tuple[Any, Any]], weight: dict[Any, float] | None = None
) -> tuple[dict[Any, tuple[float, float]], tuple[int, int]]:
    """Positions for a graph drawn in layers, causes above their effects.

    A node's layer is the length of the longest path to it from a node without causes, once the
    edges that close a cycle (found depth first, heaviest nodes first by ``weight``) are set
    aside; within a layer nodes are ordered by the mean position of their causes (one pass, fewer
    crossings), ties by ``weight``. Nodes without any edge share a last row. Returns the
    positions (x across, y down from 0) and the size of the grid (widest row, rows).
    """
    weight = weight or {}
    linked = [n for n in nodes if any(n in e for e in edges)]
    children: dict[Any, list[Any]] = {n: [] for n in linked}
    for a, b in edges:
        if a != b and b not in children[a]:
            children[a].append(b)
    order = sorted(linked, key=lambda n: -weight.get(n, 0.0))
    state: dict[Any, int] = {}  # 1: on the current path, 2: done
    forward: dict[Any, list[Any]] = {n: [] for n in linked}
    for root in order:  # iterative depth-first search; an edge to a node on the path closes a cycle
        if root in state:
            continue
        stack = [(root, iter(children[root]))]
        state[root] = 1
        while stack:
            node, rest = stack[-1]
            child = next(rest, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) != 1:
                forward[node].append(child)
                if child not in state:
                    state[child] = 1
                    stack.append((child, iter(children[child])))
    layer = {n: 0 for n in linked}
    for node in _topological(linked, forward):
        for child in forward[node]:
            layer[child] = max(layer[child], layer[node] + 1)
    rows: dict[int, list[Any]] = {}
    for n in linked:
        rows.setdefault(layer[n], []).append(n)
    alone = [n for n in nodes if n not in set(linked)]
    pos: dict[Any, tuple[float, float]] = {}
    parents: dict[Any, list[Any]] = {n: [] for n in linked}
    for a, bs in forward.items():
        for b in bs:
            parents[b].append(a)
    for depth in sorted(rows):
        members = rows[depth]
        placed = {n: np.mean([pos[p][0] for p in parents[n] if p in pos]) for n in members if parents[n]}
        members.sort(key=lambda n: (placed.get(n, 0.0), -weight.get(n, 0.0)))
        for i, n in enumerate(members):
            pos[n] = (i - (len(members) - 1) / 2, -float(depth))
    if alone:
        bottom = -float(max(rows, default=-1) + 1)
        for i, n in enumerate(sorted(alone, key=lambda n: -weight.get(n, 0.0))):
            pos[n] = (i - (len(alone) - 1) / 2, bottom)
    widest = max([len(m) for m in rows.values()] + [len(alone)], default=1)
    return pos, (widest, len(rows) + (1 if alone else 0))


def _topological(nodes: list[Any], children: dict[Any, list[Any]]) -> list[Any]:
    """``nodes`` in an order where every node comes after its causes (``children`` is acyclic)."""
    indegree = {n: 0 for n in nodes}
    for bs in children.values():
        for b in bs:
            indegree[b] += 1
    ready = [n for n in nodes if indegree[n] == 0]
    out = []
    while ready:
        node = ready.pop(0)
        out.append(node)
        for b in children[node]:
            indegree[b] -= 1
            if indegree[b] == 0:
                ready.append(b)
    return out


def frame_axes(ax: Any, pos: dict[Any, tuple[float, float]]) -> None:
    """Axis limits around ``pos`` with room for the labels; no axes drawn."""
    xs = [x for x, _ in pos.values()] or [0.0]
    ys = [y for _, y in pos.values()] or [0.0]
    ax.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
    ax.axis("off")


def dot_text(text: Any) -> str:
    """``text`` for inside a quoted Graphviz string: backslashes, quotes and newlines escaped."""
    return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def dot_id(name: Any) -> str:
    """A Graphviz identifier for ``name``: quoted, with quotes and backslashes escaped."""
    return f'"{dot_text(name)}"'
