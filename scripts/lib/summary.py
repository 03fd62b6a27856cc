"""Summary tables shared by the scripts that run the bench several times
(scripts/bench.sh, flood.sh, majority.sh, forged.sh, compression.sh and
everyday.sh), so that they read the runs' JSON, take medians and format
figures one way. scripts/lib/summary.sh runs a script's own part with this
module on its path (import summary).
"""
import glob
import json
import os
import statistics


def load_runs(out, key=None, check=None):
    """Every run's JSON in out/json, in file-name order, grouped by key.

    key maps a file's name without .json to its group; by default a name
    NAME-TARGET-RUN groups by (NAME, TARGET). check, if given, is called
    with each file's name and its run before it is grouped.
    """
    if key is None:
        key = lambda base: tuple(base.rsplit("-", 2)[:2])
    runs = {}
    for f in sorted(glob.glob(os.path.join(out, "json", "*.json"))):
        with open(f) as fh:
            r = json.load(fh)
        if check is not None:
            check(os.path.basename(f), r)
        runs.setdefault(key(os.path.basename(f)[:-5]), []).append(r)
    return runs


def median(vals):
    """The median of the values that are not None, or None if none is."""
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v):
    """A figure as the tables print it: 3 decimals below 100, none above."""
    return "-" if v is None else f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"


TARGETS = ("broker", "baseline")


def cases(runs):
    """The case names of runs grouped by (NAME, TARGET), sorted."""
    return sorted({n for n, _ in runs})


def by_target(runs, name):
    """The runs of case name, per target."""
    return {t: runs.get((name, t), []) for t in TARGETS}


def header(widths, cols=TARGETS):
    """The head of a compare table; widths as in compare."""
    head = f"{'case':<{widths[0]}} " if len(widths) == 2 else ""
    print(f"{head}{'metric':<{widths[-1]}} " + " ".join(f"{c:>12}" for c in cols) + f" {'ratio':>8}")


def compare(groups, metrics, widths, cols=TARGETS, ratio=(0, 1), case=None):
    """Prints a row per metric, the median of each column's runs and their
    ratio, and returns the rows for summary.json.

    groups maps each of cols (targets, modes) to its runs; metrics is a list
    of (label, getter, ...), a getter returning None for a run it does not
    apply to; ratio is cols[ratio[0]] / cols[ratio[1]]; widths are those of
    the case column (with case) and the metric column.
    """
    rows = []
    for label, get, *_ in metrics:
        med = {c: median(get(r) for r in groups.get(c, [])) for c in cols}
        num, den = med[cols[ratio[0]]], med[cols[ratio[1]]]
        q = num / den if num is not None and den not in (None, 0) else None
        head = f"{case:<{widths[0]}} " if case is not None else ""
        print(f"{head}{label:<{widths[-1]}} " + " ".join(f"{fmt(med[c]):>12}" for c in cols) + f" {fmt(q):>8}")
        row = {"case": case} if case is not None else {}
        row.update({"metric": label, **med, "ratio": q, "runs": {c: len(groups.get(c, [])) for c in cols}})
        rows.append(row)
    return rows


def write_summary(out, summary):
    """Writes out/summary.json."""
    with open(os.path.join(out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=2)
