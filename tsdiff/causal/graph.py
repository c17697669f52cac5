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
        """Draw the graph with matplotlib (metrics on a circle; lag on each edge). Returns the axes."""
        import matplotlib.pyplot as plt

        from tsdiff.plot import literal

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 7))
        n = len(self.metrics)
        angle = 2 * np.pi * np.arange(n) / max(n, 1)
        pos = {m: (np.cos(a), np.sin(a)) for m, a in zip(self.metrics, angle, strict=True)}
        shown = self.edges[
            (self.edges["cause"] != self.edges["effect"]) & (self.edges["strength"] >= min_strength)
        ]
        for row in shown.itertuples(index=False):
            draw_edge(ax, pos[row.cause], pos[row.effect], row, str(int(row.lag)), shrink=8, dash_lagged=True)
        for m, (x, y) in pos.items():
            box = {"boxstyle": "round", "fc": "w"}
            ax.text(x, y, literal(m), ha="center", va="center", fontsize=8, bbox=box)
        ax.set_xlim(-1.3, 1.3)
        ax.set_ylim(-1.3, 1.3)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(f"{len(shown)} edges (dashed: lagged; label: lag)")
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
    strong, dashed when lagged (with ``dash_lagged``), and ``label`` at its middle."""
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
        },
    )
    ax.text((x0 + x1) / 2, (y0 + y1) / 2, label, fontsize=7, color="gray")


def dot_text(text: Any) -> str:
    """``text`` for inside a quoted Graphviz string: backslashes, quotes and newlines escaped."""
    return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def dot_id(name: Any) -> str:
    """A Graphviz identifier for ``name``: quoted, with quotes and backslashes escaped."""
    return f'"{dot_text(name)}"'
