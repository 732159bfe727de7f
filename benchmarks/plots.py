"""PNG plots for benchmark results (matplotlib, the ``bench`` extra), drawn headless."""

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


@contextmanager
def _figure(path: str, title: str, ylabel: str) -> Iterator[Any]:
    """Axes to draw on, saved to ``path`` afterwards; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed; no plot (pip install matplotlib)", file=sys.stderr)
        yield None
        return
    figure, axes = plt.subplots(figsize=(6.5, 4))
    yield axes
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"plot written to {path}")


def bars(path: str, title: str, ylabel: str, bars: dict[str, float], notes: Sequence[str]) -> None:
    """One bar per system, each with its note written above it."""
    with _figure(path, title, ylabel) as axes:
        if axes is not None:
            drawn = axes.bar(list(bars), list(bars.values()), color=["#1f77b4"] + ["#999999"] * 9)
            axes.bar_label(drawn, labels=list(notes), padding=3, fontsize=8)
            axes.margins(y=0.15)


def lines(
    path: str,
    title: str,
    xlabel: str,
    ylabel: str,
    x: Sequence[float],
    series: dict[str, Sequence[float]],
) -> None:
    """One line per series over the same x."""
    with _figure(path, title, ylabel) as axes:
        if axes is not None:
            for name, values in series.items():
                axes.plot(list(x), list(values), "o-", label=name)
            axes.set_xlabel(xlabel)
            axes.legend()
