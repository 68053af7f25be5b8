#!/usr/bin/env python3
"""Plots benchmarks/results.json (written by run.py) to docs/benchmarks.png:
for each figure, SharedArray 4's time as a ratio of SharedArray 3.2.4's and
of the C floor's (below 1: SharedArray 4 is faster), and for the huge-page
figures as a ratio of its own time on 4K pages.

    python benchmarks/plot.py [RESULTS_JSON [OUTPUT_PNG]]
"""

import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASELINES = [("v3", "vs SharedArray 3.2.4", "tab:blue"),
             ("floor", "vs C floor (bare system calls)", "tab:gray"),
             ("4k", "vs SharedArray 4 on 4K pages", "tab:green")]


def bars(results, key):
    """{figure: (SharedArray 4's ratio to baseline key, target or None)}.
    Targets are drawn as "at most": one stated "at least x× faster" is
    turned around (at most 1/x of the time)."""
    config, out = results["config"], {}
    if key != "4k":
        for f, ratios in results["ratios_v4_to"].items():
            if ratios.get(key) is not None:
                limits = [t["limit"] for t in config["targets"].get(f, [])
                          if t["num"] == [f, "v4"] and t["den"] == [f, key]]
                out[f] = (ratios[key], limits[0] if limits else None)
        return out
    # Targets that compare SharedArray 4 on huge pages with itself on 4K.
    for targets in config["targets"].values():
        for t in targets:
            (num, c1), (den, c2) = t["num"], t["den"]
            if num == den or c1 != "v4" or c2 != "v4":
                continue
            a = results["figures"].get(num, {}).get("v4")
            b = results["figures"].get(den, {}).get("v4")
            if not a or not b:
                continue
            r = statistics.median(a) / statistics.median(b)
            if t["at_least"]:       # num/den ≥ limit: den is the huge one
                out[den] = (1 / r, 1 / t["limit"])
            else:
                out[num] = (r, t["limit"])
    return out


def main(argv):
    try:
        import matplotlib
    except ImportError:
        print("plot.py needs matplotlib: pip install matplotlib",
              file=sys.stderr)
        return 1
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    src = Path(argv[1]) if len(argv) > 1 else HERE / "results.json"
    dst = (Path(argv[2]) if len(argv) > 2
           else HERE.parent / "docs" / "benchmarks.png")
    results = json.loads(src.read_text())
    figures = list(results["figures"])
    config = results["config"]
    labels = [config["figures"][f]["label"] for f in figures]

    fig, ax = plt.subplots(figsize=(max(11, 1.1 * len(figures) + 2), 5.5))
    series = [(label, color, bars(results, key))
              for key, label, color in BASELINES]
    series = [s for s in series if s[2]]
    width = 0.8 / len(series)
    for i, (label, color, cells) in enumerate(series):
        shown = [f for f in figures if f in cells]
        offset = (i - (len(series) - 1) / 2) * width
        xs = [figures.index(f) + offset for f in shown]
        ys = [cells[f][0] for f in shown]
        drawn = ax.bar(xs, ys, width, label=label, color=color)
        ax.bar_label(drawn, labels=[f"{y:.2f}×" for y in ys], fontsize=7,
                     padding=2)
        # The team's target for this ratio, as a dashed line on the bar.
        for x, f in zip(xs, shown):
            if cells[f][1] is not None:
                ax.hlines(cells[f][1], x - width / 2, x + width / 2,
                          colors="red", linestyles="dashed")
    ax.plot([], [], color="red", linestyle="dashed", label="target")
    ax.axhline(1, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}×"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: f"{y:g}×"))
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_ylabel("SharedArray 4 time / baseline time (log scale)")
    ax.set_xticks(range(len(figures)))
    ax.set_xticklabels(labels, fontsize=7)
    m = results["machine"]
    ax.set_title(f"SharedArray {m['sharedarray']}: {m['cpu']}, "
                 f"{m['cores']} cores, Linux {m['kernel']}, "
                 f"Python {m['python']}, NumPy {m['numpy']}, {m['date']}",
                 fontsize=9)
    ax.legend(fontsize=9)
    fig.tight_layout()
    dst.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dst, dpi=120)
    print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
