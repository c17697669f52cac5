"""Causal mechanisms: lagged graph discovery, per-metric mechanisms, CausalDetector, explanations."""

from tsdiff.causal.detector import CausalDetector
from tsdiff.causal.evaluation import edge_recovery, hit_rate, top_k_accuracy
from tsdiff.causal.explain import Explanation, explain_rows
from tsdiff.causal.graph import CausalGraph

__all__ = [
    "CausalDetector",
    "CausalGraph",
    "Explanation",
    "edge_recovery",
    "explain_rows",
    "hit_rate",
    "top_k_accuracy",
]
