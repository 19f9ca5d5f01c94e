"""Progress of a long command (import, remap, sync): live bars at a terminal, plain lines
anywhere else (a file, a pipe, a container's log), where a bar redrawn in place is
either lost or left as one frozen frame of escape codes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.filesize import decimal
from rich.progress import Progress, ProgressColumn, Task, TaskID

from integration.cli.console import console

# A plain line per task at most this often while it moves (each step and each end
# is printed whenever it happens).
LINE_EVERY_SECONDS = 5.0


def counted(task: Task) -> str:
    """`description: done/total (per cent), elapsed`: things counted."""
    return _line(task, f"{task.completed:g}", None if task.total is None else f"{task.total:g}")


def in_bytes(task: Task) -> str:
    """The same, for bytes read: in kB, MB, GB."""
    total = None if task.total is None else decimal(int(task.total))
    return _line(task, decimal(int(task.completed)), total)


def _line(task: Task, done: str, total: str | None) -> str:
    fields = "".join(f", {value} {name}" for name, value in task.fields.items())
    share = f" ({task.percentage:.0f}%)" if task.total else ""
    amount = f"{done}/{total}{share}" if total is not None else done
    return f"{task.description}: {amount}{fields}, {task.elapsed or 0:.1f} s"


class ProgressLines(Progress):
    """Rich's Progress with its live display off, printing each task as a plain line:
    when its description changes (a new step), every `every` seconds while it moves,
    when it completes, and at `stop` if its last state was not printed yet."""

    def __init__(
        self,
        output: Console,
        line: Callable[[Task], str],
        every: float = LINE_EVERY_SECONDS,
        get_time: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(console=output, disable=True, get_time=get_time)
        self._to_line = line
        self._every = every
        # Per task: when its last line was printed, and what it said.
        self._printed: dict[TaskID, tuple[float, _Said | None]] = {}

    def add_task(
        self,
        description: str,
        start: bool = True,
        total: float | None = 100.0,
        completed: int = 0,
        visible: bool = True,
        **fields: Any,
    ) -> TaskID:
        task_id = super().add_task(description, start, total, completed, visible, **fields)
        # The first line comes after `every` seconds, unless a step or the end is first.
        self._printed[task_id] = (self.get_time(), None)
        return task_id

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._print_if_due(task_id)

    def update(
        self,
        task_id: TaskID,
        *,
        total: float | None = None,
        completed: float | None = None,
        advance: float | None = None,
        description: str | None = None,
        visible: bool | None = None,
        refresh: bool = False,
        **fields: Any,
    ) -> None:
        with self._lock:
            new_step = description is not None and description != self._tasks[task_id].description
        super().update(
            task_id,
            total=total,
            completed=completed,
            advance=advance,
            description=description,
            visible=visible,
            refresh=refresh,
            **fields,
        )
        self._print_if_due(task_id, now=new_step)

    def stop(self) -> None:
        for task_id in list(self._printed):
            self._print_if_due(task_id, now=True)
        super().stop()

    def _print_if_due(self, task_id: TaskID, now: bool = False) -> None:
        with self._lock:
            task = self._tasks[task_id]
            printed_at, printed = self._printed[task_id]
            said = _said(task)
            if said == printed:
                return  # the time alone moved on
            newly_finished = task.finished and not (printed and printed[-1])
            if not (now or newly_finished or self.get_time() - printed_at >= self._every):
                return
            self._printed[task_id] = (self.get_time(), said)
            line = self._to_line(task)
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)


_Said = tuple[str, float, float | None, tuple[tuple[str, Any], ...], bool]


def _said(task: Task) -> _Said:
    """What a task's line tells, but the time: description, counts, fields, finished."""
    fields = tuple(sorted(task.fields.items()))
    return task.description, task.completed, task.total, fields, task.finished


def progress_display(
    *columns: str | ProgressColumn, line: Callable[[Task], str] = counted
) -> Progress:
    """Rich's live Progress with these columns at a terminal; elsewhere `ProgressLines`,
    each task printed by `line`."""
    if console.is_terminal:
        return Progress(*columns, console=console)
    return ProgressLines(console, line)
