#!/usr/bin/env python3
"""Plots benchmarks/results.json (written by run.py) to docs/benchmarks.png:
for each figure, SharedArray 4's time as a ratio of SharedArray 3.2.4's and
of the C floor's (below 1: SharedArray 4 is faster).

    python benchmarks/plot.py [RESULTS_JSON [OUTPUT_PNG]]
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASELINES = [("v3", "vs SharedArray 3.2.4", "tab:blue"),
             ("floor", "vs C floor (bare system calls)", "tab:gray")]


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

    fig, ax = plt.subplots(figsize=(11, 5.5))
    width = 0.8 / len(BASELINES)
    for i, (key, label, color) in enumerate(BASELINES):
        shown = [f for f in figures
                 if results["ratios_v4_to"][f].get(key) is not None]
        offset = (i - (len(BASELINES) - 1) / 2) * width
        xs = [figures.index(f) + offset for f in shown]
        ys = [results["ratios_v4_to"][f][key] for f in shown]
        bars = ax.bar(xs, ys, width, label=label, color=color)
        ax.bar_label(bars, labels=[f"{y:.2f}×" for y in ys], fontsize=8,
                     padding=2)
        # The team's target for this ratio, as a dashed line on the bar.
        for x, f in zip(xs, shown):
            for t in config["targets"].get(f, []):
                if t["num"] == [f, "v4"] and t["den"] == [f, key]:
                    ax.hlines(t["limit"], x - width / 2, x + width / 2,
                              colors="red", linestyles="dashed")
    ax.plot([], [], color="red", linestyle="dashed", label="target")
    ax.axhline(1, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}×"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: f"{y:g}×"))
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_ylabel("SharedArray 4 time / baseline time (log scale)")
    ax.set_xticks(range(len(figures)))
    ax.set_xticklabels(labels, fontsize=8)
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
