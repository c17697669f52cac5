"""Causal mechanisms: lagged graph discovery, per-metric mechanisms, CausalDetector, root causes."""

from tsdiff.causal.detector import CausalDetector
from tsdiff.causal.evaluation import edge_recovery, hit_rate, top_k_accuracy
from tsdiff.causal.graph import CausalGraph
from tsdiff.causal.rootcause import rank_root_causes

__all__ = [
    "CausalDetector",
    "CausalGraph",
    "edge_recovery",
    "hit_rate",
    "rank_root_causes",
    "top_k_accuracy",
]
