"""Console progress (rich): rounds and simulated time while running, a summary table at the end."""
from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


class RunProgress:
    def __init__(self, rounds: int, duration_s: float, quiet: bool = False):
        self.quiet = quiet
        self.console = Console(stderr=True)
        self._progress = Progress(TextColumn("[bold]rounds"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("sim {task.fields[sim_s]:8.1f} s  acc {task.fields[acc]}"),
                                  TimeElapsedColumn(), console=self.console, disable=quiet)
        self._task = self._progress.add_task("rounds", total=rounds, sim_s=0.0, acc="  -  ")

        self._started = False

    def __enter__(self) -> "RunProgress":
        return self                     # the bar shows from the first round: a setup error prints alone

    def __exit__(self, *exc) -> None:
        if self._started:
            self._progress.__exit__(*exc)

    def update(self, row: dict, sim_now_s: float) -> None:
        if not self._started:
            self._started = True
            self._progress.__enter__()
        self._progress.update(self._task, advance=1, sim_s=sim_now_s, acc=f"{row['accuracy']:.3f}")

    def summary(self, result, overrides: list[str] = ()) -> None:
        """The result table and the run directory, on stdout (progress and warnings go to stderr)."""
        s = result.summary
        table = Table(title=f"run: {s['status']}", show_header=False)
        for item in overrides:
            table.add_row("--set", item)
        for key in ("rounds_completed", "sim_time_s", "final_accuracy", "final_loss", "total_energy_j",
                    "total_bytes_up"):
            value = s[key]
            table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
        if s.get("detail"):
            table.add_row("detail", s["detail"])
        out = Console()
        out.print(table)
        out.print(f"run directory: {result.run_dir}", soft_wrap=True, markup=False)
