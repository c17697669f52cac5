"""The batch commands: ``demo``, ``fit`` (from a file or a Prometheus server), ``score``,
``explain`` and ``evaluate``."""

from __future__ import annotations

import argparse
import re
import time
from typing import Any

from tsdiff._version import __version__
from tsdiff.cli.common import EXIT_ANOMALY, EXIT_OK, auth_from, progress, quieted, read_data
from tsdiff.errors import ParameterError
from tsdiff.registry import DETECTORS

BASELINES = ("pca", "iforest", "kmeans")


def run_demo(args: argparse.Namespace) -> int:
    from tsdiff.datasets import load_bundled
    from tsdiff.metrics import choose_sliding_window, evaluate
    from tsdiff.registry import build

    progress("tsdiff demo: loading the bundled data (SMD machine-1-2) ...")
    data = load_bundled()
    window = choose_sliding_window(data.test.to_numpy())
    (n_train, n_metrics), n_test = data.train.shape, len(data.test)
    progress(
        f"  train {n_train} rows x {n_metrics} metrics, test {n_test} rows, "
        f"{int(data.labels.sum())} labelled anomalous; VUS window {window}"
    )
    names = [args.detector] + ([] if args.no_baselines else [b for b in BASELINES if b != args.detector])
    rows = []
    for name in names:
        preset = args.preset if args.preset in DETECTORS[name].preset_names else "default"
        detector = build(name, preset, random_state=args.random_state)
        progress(f"  {name}: fitting ...")
        t0 = time.perf_counter()
        detector.fit(data.train)
        t1 = time.perf_counter()
        progress(f"  {name}: fitted in {t1 - t0:.1f}s; scoring the test part ...")
        result = detector.detect(data.test)
        t2 = time.perf_counter()
        labels, scores, pred = data.labels.to_numpy(), result.scores.to_numpy(), result.labels.to_numpy()
        m = evaluate(labels, scores, window, pred=pred)
        rows.append((name, m, t1 - t0, t2 - t1, result))
    print(
        f"\ntsdiff {__version__} demo: SMD machine-1-2 (bundled), {args.preset} preset, "
        "thresholds fitted on training data only\n"
    )
    header = "| detector | VUS-PR | AUC-PR | AUC-ROC | F1 | event F1 | flagged | events | fit s | score s |"
    print(header)
    print("|---|" + "---:|" * (header.count("|") - 2))
    for name, m, fit_s, score_s, result in rows:
        print(
            f"| {name} | {m['VUS-PR']:.3f} | {m['AUC-PR']:.3f} | {m['AUC-ROC']:.3f} | "
            f"{m['Standard-F1']:.3f} | {m['Event-based-F1']:.3f} | {int(result.labels.sum())} | "
            f"{len(result.events)} | {fit_s:.1f} | {score_s:.1f} |"
        )
    print("\nF1 columns use each detector's own threshold (no labels used); higher VUS-PR is better.")
    name, result = rows[0][0], rows[0][4]
    _print_events(name, result, data, args.events)
    if not args.no_plot:
        from tsdiff.plot import plot_detection

        plot_detection(
            data.test,
            result,
            true_labels=data.labels,
            path=args.plot,
            title=f"tsdiff {name} on SMD machine-1-2",
        )
        print(f"\nplot written to {args.plot}")
    return EXIT_OK


def _print_events(name: str, result: object, data: object, n_events: int) -> None:
    events = result.events  # type: ignore[attr-defined]
    if not len(events):
        print(f"\n{name} flagged no events in the test part.")
        return
    print(f"\nLargest events found by {name} (root causes, else top metrics; labelled root causes):")
    truth = data.root_causes  # type: ignore[attr-defined]
    for _, ev in events.sort_values("peak_score", ascending=False).head(n_events).iterrows():
        causes = list(ev["root_causes"])
        line = f"  rows {ev['start']}-{ev['end']} ({ev['n_rows']} rows), peak {ev['peak']}: "
        line += (
            ("causes " + ", ".join(map(str, causes[:3])))
            if causes
            else ", ".join(map(str, ev["top_metrics"]))
        )
        if truth is not None:
            hit = truth[(truth["start"] <= ev["end"]) & (truth["end"] > ev["start"])]
            line += (
                f"  | labelled: {', '.join(map(str, hit.iloc[0]['metrics']))}"
                if len(hit)
                else "  | not labelled"
            )
        print(line)


def run_fit(args: argparse.Namespace) -> int:
    from tsdiff.persist import check_save_target
    from tsdiff.registry import build

    check_save_target(args.output)  # before a long fit, not after it
    source = None
    if args.prometheus is not None:
        if args.data is not None:
            raise ParameterError("give a data file or --prometheus, not both")
        source, data = _read_prometheus(args)
        where = f"{args.prometheus} ({len(source.queries)} queries, step {source.step:g}s)"
    elif args.data is None:
        raise ParameterError("give a data file, or --prometheus URL with --query/--selector and --start")
    else:
        data, where = read_data(args.data, args), args.data
    progress(f"tsdiff fit: {data.shape[0]} rows x {data.shape[1]} metrics from {where}")
    t0 = time.perf_counter()
    if args.warm_start is not None:
        import tsdiff

        detector = quieted(tsdiff.load(args.warm_start))
        progress(f"tsdiff fit: refitting {type(detector).__name__} from {args.warm_start} (warm start)")
        detector.refit(data)
    else:
        detector = quieted(build(args.detector, args.preset, random_state=args.random_state))
        if source is not None:
            data = _drop_sparse(data, detector.holdout_start(len(data)))
        detector.fit(data)
    if source is not None:
        # saved with the model: a watcher asks the same queries; the fitted range is reported
        detector.source_ = {
            **source.to_dict(),
            "fitted_from": str(data.index[0]),
            "fitted_to": str(data.index[-1]),
        }
    detector.save(args.output)
    name = type(detector).__name__ if args.warm_start else args.detector
    progress(f"tsdiff fit: {name} fitted in {time.perf_counter() - t0:.1f}s, saved to {args.output}")
    if getattr(detector, "weights_", None) is not None:
        progress(f"tsdiff fit: fusion weights {describe_weights(detector)}")
    return EXIT_OK


def describe_weights(detector: Any) -> str:
    """A fused model's weights and the label-free evidence they came from, for one line."""
    evidence = detector.weighting_ or {}
    parts = []
    for name, weight in detector.weights_.items():
        why = ", ".join(f"{kind} {values[name]:.2f}" for kind, values in evidence.items() if name in values)
        parts.append(f"{name} {weight:.2f}" + (f" ({why})" if why else ""))
    rule = detector.weighting if evidence else "fixed"
    return "; ".join(parts) + f" [{rule}]"


#: ``NAME=QUERY``: an identifier, then one ``=`` that does not begin a comparison (``==``, ``=~``)
QUERY_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)=(?![=~])(.+)", re.DOTALL)


def parse_queries(texts: list[str]) -> dict[str, str] | list[str]:
    """``--query`` values as the source takes them: a mapping when they are ``NAME=QUERY``, a list
    otherwise (``up == 1`` and ``node_load1 >= 0`` are queries, never names)."""
    plain = [q for q in texts if QUERY_NAME.match(q) is None]
    named = {m.group(1): m.group(2) for m in map(QUERY_NAME.match, texts) if m is not None}
    if named and plain:
        raise ParameterError(f"name every --query (NAME=QUERY) or none; unnamed: {plain}")
    return named or plain


def _read_prometheus(args: argparse.Namespace) -> tuple[object, object]:
    """The source and the frame ``fit --prometheus`` asks for."""
    from tsdiff.sources.prometheus import PrometheusSource

    if args.start is None:
        raise ParameterError("--prometheus needs --start (e.g. now-7d)")
    queries = parse_queries(args.query)
    source = PrometheusSource(
        args.prometheus, queries, selector=args.selector, step=args.step, auth=auth_from(args)
    )
    return source, source.read(args.start, args.end)


def _drop_sparse(data: Any, rows: int) -> Any:
    """The series read from a server, without those that have too few values in the rows a model
    learns from (a series that appeared near the end of the range, a new pod's): reported, dropped;
    a watcher ignores them too, as it reads only the model's columns."""
    from tsdiff.frame import needed_values, sparse_columns

    sparse = [data.columns[j] for j in sparse_columns(data.to_numpy(dtype=float), rows)]
    if len(sparse) == data.shape[1]:
        raise ParameterError(
            f"no series has {needed_values(rows)} values in the first {rows} rows of the range; start "
            "it later or fit on a longer one"
        )
    if sparse:
        shown = ", ".join(map(str, sparse[:5])) + (f" and {len(sparse) - 5} more" if len(sparse) > 5 else "")
        progress(
            f"tsdiff fit: left out {len(sparse)} series with fewer than {needed_values(rows)} values in the "
            f"first {rows} rows (the ones the model learns from): {shown}"
        )
    return data.drop(columns=sparse)


def run_score(args: argparse.Namespace) -> int:
    import tsdiff
    from tsdiff.tableio import check_output, write_table

    check_output(args.output)
    detector = quieted(tsdiff.load(args.model))
    data = read_data(args.data, args)
    progress(f"tsdiff score: {data.shape[0]} rows from {args.data} with {type(detector).__name__}")
    result = detector.detect(data)
    frame = result.to_frame(feature_scores=args.feature_scores)
    frame["top_metrics"] = result.event_metrics("top_metrics")
    frame["root_causes"] = result.event_metrics("root_causes")
    write_table(frame, args.output)
    n = int(result.labels.sum())
    progress(f"tsdiff score: {n} anomalous rows in {len(result.events)} events; wrote {args.output}")
    return EXIT_ANOMALY if args.fail_on_anomaly and n else EXIT_OK


def run_explain(args: argparse.Namespace) -> int:
    """Without ``--event`` or ``--start``: list the events; otherwise print one explanation."""
    import tsdiff
    from tsdiff.errors import ParameterError

    if (args.start is None) != (args.end is None):
        raise ParameterError("--start and --end go together")
    detector = quieted(tsdiff.load(args.model))
    if not detector.names_root_causes():
        raise ParameterError(
            f"the model in {args.model} ({type(detector).__name__}) has no causal model to explain with"
        )
    if args.data is None and args.prometheus is None:
        raise ParameterError("give a data file, or --prometheus to read the model's series from its server")
    if args.data is not None and args.prometheus is not None:
        raise ParameterError("give a data file or --prometheus, not both")
    data = read_data(args.data, args) if args.data is not None else _recent_rows(detector, args)
    if args.start is not None:
        explanation = detector.rank_causes(data, _index_label(data, args.start), _index_label(data, args.end))
    else:
        result = detector.detect(data)
        if args.event is None:
            _list_events(result)
            return EXIT_OK
        if not len(result.events):
            server = args.prometheus or "the model's server"
            where = args.data or f"{args.since} .. {args.until} on {server}"
            raise ParameterError(f"no events in {where}, so no event {args.event}")
        explanation = result.explain(args.event)
    if args.json:
        from tsdiff.serialize import to_json

        print(to_json(explanation.to_dict(), "the explanation"))
    else:
        print(explanation.to_text())
    if args.dot:
        with open(args.dot, "w", encoding="utf-8") as handle:
            handle.write(explanation.to_dot() + "\n")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ax = explanation.plot()
        ax.figure.savefig(args.plot, dpi=120, bbox_inches="tight")
        plt.close(ax.figure)
        progress(f"tsdiff explain: wrote {args.plot}")
    return EXIT_OK


def _recent_rows(detector: Any, args: argparse.Namespace) -> Any:
    """The model's series from ``--since`` to ``--until``, read from the server it was fitted
    from (or ``--prometheus URL``); a series the server no longer has is a column of NaN, reported."""
    from tsdiff.sources.prometheus import PrometheusSource

    if getattr(detector, "source_", None) is None:
        raise ParameterError(
            f"the model in {args.model} was not fitted from Prometheus: give a data file to explain"
        )
    source = PrometheusSource.from_dict(detector.source_, url=args.prometheus or None, auth=auth_from(args))
    columns = [str(c) for c in detector.feature_names_in_]
    data = source.read(args.since, args.until, columns=columns)
    missing = [c for c in columns if c not in data.columns]
    if missing:
        progress(
            f"tsdiff explain: no series for {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )
    progress(f"tsdiff explain: {len(data)} rows ({args.since} .. {args.until}) from {source.url}")
    return data.reindex(columns=columns)


def _list_events(result: object) -> None:
    events = result.events  # type: ignore[attr-defined]
    if not len(events):
        print("no events")
        return
    print(f"{len(events)} events (explain one with --event N):")
    for i, ev in enumerate(events.itertuples(index=False)):
        causes = ", ".join(map(str, ev.root_causes[:3]))
        span = f"{ev.start} .. {ev.end}  {ev.n_rows} rows"
        print(f"{i:>4}  {span}  peak {ev.peak_score:.3g}  root causes: {causes}")


def _index_label(data: object, text: str) -> object:
    """A ``--start``/``--end`` value as a label of the data's index (a time, or a row number)."""
    import pandas as pd

    from tsdiff.errors import ParameterError

    index = data.index  # type: ignore[attr-defined]
    try:
        if isinstance(index, pd.DatetimeIndex):
            stamp = pd.Timestamp(text)
            if index.tz is not None and stamp.tz is None:
                stamp = stamp.tz_localize(index.tz)
            return stamp
        return int(text)
    except (ValueError, TypeError):
        kind = "a time" if isinstance(index, pd.DatetimeIndex) else "a row number"
        raise ParameterError(f"{text!r} is not {kind} of this data's index") from None


def run_evaluate(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from tsdiff.errors import InputError
    from tsdiff.metrics import choose_sliding_window, evaluate

    scores = read_data(args.scores, args)
    labels = read_data(args.labels, args)
    for what, frame, column in (("scores", scores, "score"), ("labels", labels, args.label_column)):
        if column not in frame.columns:
            raise InputError(f"{what} file has no column {column!r}")
    timed = isinstance(scores.index, pd.DatetimeIndex) and isinstance(labels.index, pd.DatetimeIndex)
    if timed:  # join on time, so labels of other rows can never line up by position
        if labels.index.tz != scores.index.tz:
            raise InputError("the scores' and the labels' timestamps differ in time zone")
        joined = labels[args.label_column].reindex(scores.index)
        unlabelled = int(joined.isna().sum())
        if unlabelled == len(joined):
            raise InputError(
                f"no scored time has a label: scores cover {scores.index[0]} .. {scores.index[-1]}, "
                f"labels {labels.index[0]} .. {labels.index[-1]}"
            )
        if unlabelled:
            raise InputError(
                f"{unlabelled} scored rows have no label (first: {joined.index[joined.isna()][0]})"
            )
        y = joined.to_numpy()
    else:
        if len(scores) != len(labels):
            raise InputError(f"{len(scores)} scored rows but {len(labels)} labels")
        y = labels[args.label_column].to_numpy()
    if not np.isin(y, (0, 1)).all():
        raise InputError(f"label column {args.label_column!r} must hold only 0 and 1")
    y = y.astype(np.int8)
    s = scores["score"].to_numpy(dtype=float)
    pred = scores["label"].to_numpy() if "label" in scores.columns else None
    if args.sliding_window is not None and not 0 <= args.sliding_window <= len(s):
        raise InputError(
            f"--sliding-window must be between 0 and the {len(s)} scored rows, got {args.sliding_window}"
        )
    window = args.sliding_window if args.sliding_window is not None else choose_sliding_window(s)
    if not y.any():
        progress("tsdiff evaluate: the labels mark no anomaly, so the ranking metrics are undefined (nan)")
    how = "joined on time" if timed else "by position"
    progress(
        f"tsdiff evaluate: {len(s)} rows, {int(y.sum())} labelled anomalous ({how}); VUS window {window}"
    )
    metrics = evaluate(y, s, window, pred=pred)
    if args.json:
        from tsdiff.serialize import to_json

        print(to_json(metrics, "the metrics"))
    else:
        for key, value in metrics.items():
            print(f"{key:>16}  {value:.4f}" if isinstance(value, float) else f"{key:>16}  {value}")
    return EXIT_OK
