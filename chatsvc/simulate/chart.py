"""The run's PNG chart: the queue's length and the waits over time.

Owns the drawing only; the numbers come from `report.timeline`. Uses matplotlib (the `simulate`
extra) with its Agg backend, so it needs no display; imported only when a chart is asked for.
"""

from __future__ import annotations

from pathlib import Path

from chatsvc.simulate.report import Timeline

# Wide enough for a two-minute surge at one sample a second; 100 dpi keeps the file small.
FIGURE_SIZE_IN = (10.0, 6.0)
DPI = 100


class ChartError(Exception):
    """matplotlib is not installed (pip install 'chatsvc[simulate]') or the file cannot be
    written."""


def write_chart(line: Timeline, path: Path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        raise ChartError("--chart needs matplotlib: pip install 'chatsvc[simulate]'") from None
    figure, (queue, waits) = pyplot.subplots(2, 1, sharex=True, figsize=FIGURE_SIZE_IN)
    try:
        figure.suptitle(title)
        queue.step(line.times_s, line.waiting, where="post", color="tab:blue")
        queue.set_ylabel("patients waiting")
        queue.grid(alpha=0.3)
        waits.plot(line.times_s, line.longest_wait_s, color="tab:orange", label="longest wait now")
        waits.scatter(
            line.served_at_s,
            line.served_wait_s,
            s=10,
            color="tab:green",
            label="wait of each patient served (at assignment)",
        )
        waits.set_ylabel("wait (s)")
        waits.set_xlabel("seconds into the run")
        waits.grid(alpha=0.3)
        waits.legend(loc="upper left")
        figure.tight_layout()
        try:
            figure.savefig(path, dpi=DPI)
        except OSError as error:
            raise ChartError(f"cannot write {path}: {error}") from None
    finally:
        pyplot.close(figure)
