"""PNG plots for benchmark results (matplotlib, the ``bench`` extra), drawn headless."""

import sys
from collections.abc import Sequence
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bars(path: str, title: str, ylabel: str, bars: dict[str, float], notes: Sequence[str]) -> None:
    """One bar per system, each with its note written above it."""
    try:
        plt = _pyplot()
    except ImportError:
        print("matplotlib is not installed; no plot (pip install matplotlib)", file=sys.stderr)
        return
    figure, axes = plt.subplots(figsize=(6.5, 4))
    drawn = axes.bar(list(bars), list(bars.values()), color=["#1f77b4"] + ["#999999"] * 9)
    axes.bar_label(drawn, labels=list(notes), padding=3, fontsize=8)
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    axes.margins(y=0.15)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"plot written to {path}")


def lines(
    path: str, title: str, xlabel: str, ylabel: str, x: Sequence[float],
    series: dict[str, Sequence[float]], log_y: bool = False,
) -> None:  # fmt: skip
    """One line per series over the same x."""
    try:
        plt = _pyplot()
    except ImportError:
        print("matplotlib is not installed; no plot (pip install matplotlib)", file=sys.stderr)
        return
    figure, axes = plt.subplots(figsize=(6.5, 4))
    for name, values in series.items():
        axes.plot(list(x), list(values), "o-", label=name)
    if log_y:
        axes.set_yscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"plot written to {path}")
