"""Evaluation metrics of time-series anomaly detection, reproducing TSB-AD 1.5's ``get_metrics``.

:func:`evaluate` returns all nine TSB-AD metrics at once; each also has its own function. Without
given predictions the F1-family values are *oracle* values (best threshold chosen with the labels),
exactly as TSB-AD reports them. Everything is numpy only and vectorised over thresholds.
"""

from __future__ import annotations

from tsdiff.metrics.affiliation import affiliation_f, affiliation_precision_recall
from tsdiff.metrics.curves import auc_pr, auc_roc, vus, vus_pr, vus_roc
from tsdiff.metrics.f1 import event_f1, point_adjusted_f1, range_f1, standard_f1
from tsdiff.metrics.summary import METRIC_KEYS, best_f1_threshold, evaluate
from tsdiff.metrics.window import choose_sliding_window

__all__ = [
    "METRIC_KEYS",
    "affiliation_f",
    "affiliation_precision_recall",
    "auc_pr",
    "auc_roc",
    "best_f1_threshold",
    "choose_sliding_window",
    "evaluate",
    "event_f1",
    "point_adjusted_f1",
    "range_f1",
    "standard_f1",
    "vus",
    "vus_pr",
    "vus_roc",
]
