"""amploop's default tabular model against scikit-learn's logistic regression and gradient boosting (CPU).

Every contender sees exactly the same rows: amploop splits each table (its own train/test split
when it has one, else a seeded 70/10/20 split) and the baselines train on amploop's training and
validation rows together and are scored on amploop's test rows. amploop runs with its default
configuration (``AmploopConfig()`` with only the seeds set: ``train.seed``, ``data.split_seed``),
through ``amploop.train.fit.fit`` and the one inference path, ``Predictor``; the baselines are
``StandardScaler`` + ``LogisticRegression`` (categoricals one-hot) and
``HistGradientBoostingClassifier`` (categoricals native), both at scikit-learn's defaults. Column
kinds come from amploop's inferred schema, so all three treat a column the same way; text
columns (ignored by amploop's encoder) are left out of the baselines too.

The tables ship inside installed packages (``pip install -e '.[bench]'``); nothing is
downloaded. Timings are reported, never asserted.

    .venv/bin/python bench/tabular_defaults.py [--seeds 3] [--tables wine,adult] [--threads 1] [--json]

Every contender gets the same CPU threads (one by default: on a small shared machine, torch's and
scikit-learn's OpenMP pools competing for the cores distort the timings far more than they help).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from amploop.config import AmploopConfig, DataConfig, TrainConfig
from amploop.data import Dataset, load_builtin
from amploop.models.runtime import Predictor
from amploop.train.fit import bundle_from_fit, fit

CONTENDERS = ("amploop", "logistic", "boosting")
GOAL_POINTS = 1.0  # amploop's default should be within this many accuracy points of the better baseline


def _missing_extra(package: str) -> SystemExit:
    return SystemExit(f"bench/tabular_defaults.py needs {package}: pip install -e '.[bench]'")


def _sklearn(name: str) -> Callable[[], Dataset]:
    def load() -> Dataset:
        from sklearn import datasets

        frame = getattr(datasets, f"load_{name}")(as_frame=True).frame
        return Dataset.from_table(name, frame, target="target", task="classification")

    return load


def _statsmodels(name: str) -> pd.DataFrame:
    try:
        from statsmodels import datasets
    except ImportError:
        raise _missing_extra("statsmodels") from None
    return getattr(datasets, name).load_pandas().data


def _vega(name: str) -> pd.DataFrame:
    try:
        from vega_datasets import local_data  # the files inside the package, never the network
    except ImportError:
        raise _missing_extra("vega_datasets") from None
    return getattr(local_data, name)()


def fair() -> Dataset:
    """Fair (1978) extramarital affairs survey, 6,366 women: any affairs or none."""
    table = _statsmodels("fair").copy()
    table["affairs"] = np.where(table["affairs"] > 0, "some", "none")
    return Dataset.from_table("fair", table, target="affairs", categorical=["occupation", "occupation_husb"])


def anes96() -> Dataset:
    """American National Election Studies 1996, 944 voters: Clinton or Dole."""
    table = _statsmodels("anes96").copy()
    table["vote"] = table["vote"].map({0.0: "clinton", 1.0: "dole"})
    return Dataset.from_table("anes96", table, target="vote")


def modechoice() -> Dataset:
    """Greene's travel-mode choice, 210 travellers x 4 modes: was this mode chosen."""
    table = _statsmodels("modechoice").drop(columns=["individual"])  # an id: it would only leak
    table["mode"] = table["mode"].map({1.0: "air", 2.0: "train", 3.0: "bus", 4.0: "car"})
    table["choice"] = table["choice"].map({0.0: "no", 1.0: "yes"})
    return Dataset.from_table("modechoice", table, target="choice")


def cars() -> Dataset:
    """Vega's cars (UCI auto-mpg), 392 complete rows: the origin (USA, Europe, Japan)."""
    table = _vega("cars").drop(columns=["Name"])  # the model name would give the origin away
    table["Year"] = table["Year"].dt.year
    # amploop refuses missing numeric features by default (data.impute_missing); drop the 14 rows
    table = table.dropna().reset_index(drop=True)
    return Dataset.from_table("cars", table, target="Origin")


def seattle_weather() -> Dataset:
    """Vega's Seattle weather 2012-2015, 1,461 days: drizzle, fog, rain, snow or sun."""
    table = _vega("seattle_weather")
    table = table.assign(month=table["date"].dt.month).drop(columns=["date"])
    return Dataset.from_table("seattle_weather", table, target="weather")


TABLES: dict[str, Callable[[], Dataset]] = {
    "breast_cancer": _sklearn("breast_cancer"),
    "wine": _sklearn("wine"),
    "digits": _sklearn("digits"),
    "fair": fair,
    "anes96": anes96,
    "modechoice": modechoice,
    "cars": cars,
    "seattle_weather": seattle_weather,
    "adult": lambda: load_builtin("adult"),
}


@dataclass(frozen=True)
class Score:
    table: str
    features: str  # e.g. "4n+2c": numeric and categorical columns as amploop's schema sees them
    rows: int
    contender: str
    seed: int
    accuracy: float
    balanced_accuracy: float
    seconds: float


def _features(dataset: Dataset) -> tuple[list[str], list[str]]:
    """The numeric and categorical feature columns, as amploop's schema sees them."""
    numeric = [c.name for c in dataset.schema.columns if c.kind == "numeric" and c.name != dataset.target]
    categorical = [c.name for c in dataset.schema.columns if c.kind == "categorical" and c.name != dataset.target]
    return numeric, categorical


def _baseline(kind: str, numeric: list[str], categorical: list[str]):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    if kind == "logistic":
        columns = ColumnTransformer(
            [
                ("numeric", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
                ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
            ]
        )
        return make_pipeline(columns, LogisticRegression(max_iter=1000))
    columns = ColumnTransformer(
        [
            ("numeric", "passthrough", numeric),
            ("categorical", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan), categorical),
        ]
    )
    mask = [False] * len(numeric) + [True] * len(categorical)
    return make_pipeline(columns, HistGradientBoostingClassifier(categorical_features=mask, random_state=0))


def _as_text(values) -> np.ndarray:
    return np.asarray([str(v) for v in values], dtype=object)


def default_config(seed: int) -> AmploopConfig:
    """amploop's defaults, with the seed for the split (``data.split_seed`` where it exists) and the training."""
    split = {"split_seed": seed} if "split_seed" in DataConfig.model_fields else {}
    return AmploopConfig(data=DataConfig(**split), train=TrainConfig(seed=seed))


def run_table(name: str, dataset: Dataset, seed: int) -> list[Score]:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    scores = []
    numeric, categorical = _features(dataset)
    shape = "+".join(f"{len(c)}{k}" for c, k in ((numeric, "n"), (categorical, "c")) if c)

    def score(contender: str, predicted, truth, seconds: float) -> None:
        truth, predicted = _as_text(truth), _as_text(predicted)
        scores.append(
            Score(
                name,
                shape,
                dataset.n_rows,
                contender,
                seed,
                accuracy=float(accuracy_score(truth, predicted)),
                balanced_accuracy=float(balanced_accuracy_score(truth, predicted)),
                seconds=seconds,
            )
        )

    start = time.perf_counter()
    result = fit(dataset, default_config(seed))
    test = result.splits.test
    predicted = Predictor(bundle_from_fit(result)).predict(test.table.drop(columns=[dataset.target]))
    score("amploop", predicted, test.labels, time.perf_counter() - start)

    train = pd.concat([result.splits.train.table, result.splits.validation.table], ignore_index=True)
    for kind in ("logistic", "boosting"):
        start = time.perf_counter()
        model = _baseline(kind, numeric, categorical)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lbfgs may stop at max_iter on a table or two; the score says enough
            model.fit(train[numeric + categorical], _as_text(train[dataset.target]))
            predicted = model.predict(test.table[numeric + categorical])
        score(kind, predicted, test.labels, time.perf_counter() - start)
    return scores


def summarise(scores: list[Score]) -> list[dict]:
    """One row per table (means over seeds), then the mean row; gaps in accuracy points."""
    rows = []
    for table in dict.fromkeys(s.table for s in scores):
        first = next(s for s in scores if s.table == table)
        row: dict = {"table": table, "rows": first.rows, "features": first.features}
        for contender in CONTENDERS:
            mine = [s for s in scores if s.table == table and s.contender == contender]
            for metric in ("accuracy", "balanced_accuracy", "seconds"):
                row[f"{contender}_{metric}"] = statistics.fmean(getattr(s, metric) for s in mine)
        best = max(CONTENDERS[1:], key=lambda c: row[f"{c}_accuracy"])
        row["better_baseline"] = best
        row["gap_points"] = 100 * (row["amploop_accuracy"] - row[f"{best}_accuracy"])
        row["balanced_gap_points"] = 100 * (row["amploop_balanced_accuracy"] - row[f"{best}_balanced_accuracy"])
        row["time_ratio"] = row["amploop_seconds"] / row[f"{best}_seconds"]
        rows.append(row)
    mean: dict = {"table": "mean", "rows": None, "features": "", "better_baseline": ""}
    for key in rows[0]:
        if key not in mean:
            mean[key] = statistics.fmean(r[key] for r in rows)
    # the mean's gap is against the better baseline per table, so it equals the mean of the gaps
    return [*rows, mean]


def goal_met(rows: list[dict]) -> tuple[bool, list[str]]:
    tables, mean = rows[:-1], rows[-1]
    short = [r["table"] for r in tables if r["gap_points"] < -GOAL_POINTS]
    return not short and mean["gap_points"] >= 0, short


def print_table(rows: list[dict], seeds: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"amploop defaults vs scikit-learn, test accuracy (balanced) — mean of {seeds} seed(s)")
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("features")
    for contender in CONTENDERS:
        table.add_column(contender, justify="right")
    table.add_column("gap, points", justify="right")
    table.add_column("gap bal.", justify="right")
    for contender in CONTENDERS:
        table.add_column(f"{contender} s", justify="right")
    table.add_column("time x", justify="right")
    for row in rows:
        cells = [row["table"], "" if row["rows"] is None else f"{row['rows']:,}", row["features"]]
        for contender in CONTENDERS:
            mark = "*" if contender == row["better_baseline"] else ""
            cells.append(f"{row[f'{contender}_accuracy']:.4f} ({row[f'{contender}_balanced_accuracy']:.4f}){mark}")
        cells += [f"{row['gap_points']:+.2f}", f"{row['balanced_gap_points']:+.2f}"]
        cells += [f"{row[f'{c}_seconds']:.2f}" for c in CONTENDERS]
        cells.append(f"{row['time_ratio']:.1f}")
        table.add_row(*cells, end_section=row is rows[-2])
    console = Console(width=200)
    console.print(table)
    met, short = goal_met(rows)
    console.print(
        "* the better baseline; gap = amploop - better baseline (accuracy points; 'bal.' for balanced accuracy); "
        "time x = amploop seconds / better baseline's seconds",
        highlight=False,
    )
    verdict = "met" if met else "NOT met"
    detail = f"; more than {GOAL_POINTS:g} point below on: {', '.join(short)}" if short else ""
    console.print(
        f"goal (every table within {GOAL_POINTS:g} point of the better baseline, mean gap >= 0): {verdict} "
        f"(mean gap {rows[-1]['gap_points']:+.2f}){detail}",
        highlight=False,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="average over seeds 0..N-1 (split and initialisation)")
    parser.add_argument("--tables", default=",".join(TABLES), help=f"comma-separated subset of {', '.join(TABLES)}")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for every contender (torch and OpenMP)")
    args = parser.parse_args(argv)
    chosen = [t.strip() for t in args.tables.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in TABLES]
    if unknown or not chosen:
        parser.error(f"--tables: choose from {', '.join(TABLES)}")
    if args.seeds < 1 or args.threads < 1:
        parser.error("--seeds and --threads are at least 1")
    import torch
    from threadpoolctl import threadpool_limits

    # One thread each by default: with two OpenMP runtimes (torch's and scikit-learn's) spinning for
    # the same two busy cores, gradient boosting on 455 rows took 49 s instead of 0.25 s.
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    scores: list[Score] = []
    for name in chosen:
        dataset = TABLES[name]()
        for seed in range(args.seeds):
            scores += run_table(name, dataset, seed)
            if not args.json:
                print(f"{name} seed {seed}: done", file=sys.stderr, flush=True)
    rows = summarise(scores)
    if args.json:
        met, short = goal_met(rows)
        result = {
            "seeds": args.seeds,
            "goal": {"points": GOAL_POINTS, "met": met, "tables_short": short},
            "tables": rows,
            "runs": [asdict(s) for s in scores],
        }
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        print_table(rows, args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
