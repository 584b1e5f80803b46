"""`amploop predict` on a large file: rows/s and peak memory by input format and chunk size.

Writes ``--rows`` adult-like rows (drawn with replacement from the built-in adult table, with
noise on the numeric columns) to a Parquet and a CSV file, trains a quick adult model into a
temporary AMPLOOP_HOME, then scores both files with chunks of 10,000 and 100,000 rows. Each run
is its own process, so its peak resident memory (VmHWM, the high-water mark of its own memory
map) is its own; a process that only imports amploop and loads the model gives the baseline.

    .venv/bin/python bench/predict_file.py [--rows 1000000] [--repeats 2] [--precision fp32] [--epochs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

CHUNKS = (10_000, 100_000)

CHILD = """
import json, sys
from amploop.registry.loading import load_model
from amploop.serve.predict import predict_file
reference, source, output, precision, chunk_rows = sys.argv[1:6]
if source == "-":
    load_model(reference, precision=precision)  # the baseline: imports and the model, nothing scored
    answer = {}
else:
    answer = predict_file(reference, source, output, precision=precision, chunk_rows=int(chunk_rows)).to_dict()
# VmHWM is the peak of this process's own memory map; getrusage's (and wait4's) maxrss also counts
# the parent's resident memory at fork, which here holds the training run
answer["vm_hwm_kb"] = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps(answer))
"""


def adult_like(rows: int, seed: int = 0) -> pa.Table:
    """``rows`` rows of adult drawn with replacement; numbers get noise (5% of their spread), rounded as adult's are."""
    from amploop.data import load_builtin

    table = load_builtin("adult").table
    rng = np.random.default_rng(seed)
    sample = table.iloc[rng.integers(0, len(table), rows)].reset_index(drop=True)
    for name in sample.columns:
        if name != "income" and np.issubdtype(sample[name].dtype, np.number):
            noise = rng.normal(0.0, 0.05 * float(sample[name].std()), rows)
            sample[name] = np.maximum(0, np.rint(sample[name].to_numpy() + noise)).astype(np.int64)
    return pa.Table.from_pandas(sample, preserve_index=False)


def train(home: Path, epochs: int) -> str:
    import amploop
    from amploop import AmploopConfig, ModelConfig, Store, TrainConfig
    from amploop.workspace import Workspace

    config = AmploopConfig(
        model=ModelConfig(name="adult"), train=TrainConfig(epochs=epochs, precision="fp32", device="cpu")
    )
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as store:
        return amploop.train_version(config, dataset="adult", store=store).reference


def run_child(env: dict[str, str], *argv: str) -> tuple[dict, float]:
    """(the child's JSON answer, its peak RSS in MB) for one scoring process."""
    done = subprocess.run([sys.executable, "-c", CHILD, *argv], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"a scoring process failed ({done.returncode}): {' '.join(argv)}\n{done.stderr[-2000:]}")
    answer = json.loads(done.stdout)
    return answer, answer["vm_hwm_kb"] / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each; the fastest is shown, the highest peak")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="amploop-bench-predict-") as folder:
        root = Path(folder)
        data = adult_like(args.rows)
        in_memory_mb = data.to_pandas().memory_usage(deep=True).sum() / 2**20
        files = {"parquet": root / "rows.parquet", "csv": root / "rows.csv"}
        pq.write_table(data, files["parquet"])  # pyarrow's default row groups (up to 1Mi rows each)
        pa_csv.write_csv(data, files["csv"])
        del data
        reference = train(root / ".amploop", args.epochs)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLOOP_")}
        env["AMPLOOP_HOME"] = str(root / ".amploop")
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"\npredict_file: {args.rows:,} adult-like rows, {reference} ({args.precision}), "
            f"{os.cpu_count()} cores, load average {load}\n"
        )
        _, baseline_mb = run_child(env, reference, "-", "-", args.precision, "0")
        header = f"{'input':<8} {'file MB':>8} {'chunk rows':>10} {'seconds':>8} {'rows/s':>9} {'peak RSS MB':>12}"
        print(header + f" {'over baseline MB':>17}   (seconds: the fastest of {args.repeats} runs)")
        print(f"{'(none)':<8} {'':>8} {'-':>10} {'':>8} {'':>9} {baseline_mb:>12,.0f} {0:>17,.0f}   imports + model")
        chunks = (*CHUNKS, args.rows)  # the last: the whole file in one chunk, what unbounded reading costs
        runs = [(kind, chunk_rows) for kind in files for chunk_rows in chunks]
        best: dict[tuple[str, int], float] = {}
        peak: dict[tuple[str, int], float] = {}
        for _ in range(args.repeats):  # round robin, so a busy moment of the machine hits one run of each, not all
            for kind, chunk_rows in runs:
                output = root / f"scores-{kind}-{chunk_rows}.parquet"
                argv = (reference, str(files[kind]), str(output), args.precision, str(chunk_rows))
                result, peak_mb = run_child(env, *argv)
                best[kind, chunk_rows] = min(best.get((kind, chunk_rows), float("inf")), result["seconds"])
                peak[kind, chunk_rows] = max(peak.get((kind, chunk_rows), 0.0), peak_mb)
                output.unlink()
        above = {run: peak[run] - baseline_mb for run in runs}
        for kind, chunk_rows in runs:
            seconds = best[kind, chunk_rows]
            print(
                f"{kind:<8} {files[kind].stat().st_size / 2**20:>8,.0f} {chunk_rows:>10,} {seconds:>8.1f} "
                f"{args.rows / seconds:>9,.0f} {peak[kind, chunk_rows]:>12,.0f} {above[kind, chunk_rows]:>17,.0f}"
                + ("   whole file" if chunk_rows == args.rows else "")
            )
        groups = pq.ParquetFile(files["parquet"]).num_row_groups
        print(f"\nthe table in pandas takes {in_memory_mb:,.0f} MB; the Parquet file has {groups} row group(s), each")
        print("decoded whole (its used columns) by the reader. Memory above the baseline, by rows per chunk:")
        for kind in files:
            cells = ", ".join(f"{above[kind, c]:,.0f} MB at {c:,}" for c in chunks)
            small, large = CHUNKS
            ratio = above[kind, large] / max(above[kind, small], 1.0)
            print(f"  {kind}: {cells} ({ratio:.1f}x for {large // small}x the rows per chunk)")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
