"""Progress where no terminal shows it (`integration.cli.progress`): a plain line per
step, every few seconds while a task moves, once when it ends; on a clock the test
moves, with no store and no process."""

from __future__ import annotations

import io
from collections.abc import Callable

from rich.console import Console
from rich.progress import Task

from integration.cli.progress import ProgressLines, counted, in_bytes


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lines_of(output: io.StringIO) -> list[str]:
    return output.getvalue().splitlines()


def progress(line: Callable[[Task], str] = counted) -> tuple[ProgressLines, Clock, io.StringIO]:
    output, clock = io.StringIO(), Clock()
    console = Console(file=output, width=80)
    return ProgressLines(console, line, every=5.0, get_time=clock), clock, output


def test_a_line_every_few_seconds_while_it_moves_and_one_when_it_ends() -> None:
    shown, clock, output = progress()
    task = shown.add_task("clinic: mapping", total=100)
    for _ in range(12):
        clock.now += 1
        shown.advance(task, 5)
    assert lines_of(output) == [
        "clinic: mapping: 25/100 (25%), 5.0 s",
        "clinic: mapping: 50/100 (50%), 10.0 s",
    ]
    clock.now += 1
    shown.advance(task, 40)
    assert lines_of(output)[-1] == "clinic: mapping: 100/100 (100%), 13.0 s"
    shown.stop()
    shown.stop()
    assert len(lines_of(output)) == 3  # the end once, however often it is stopped


def test_each_new_step_is_a_line_at_once() -> None:
    shown, clock, output = progress()
    task = shown.add_task("hospital export", total=None, pages=0)
    shown.update(task, description="hospital export: kicked off")
    clock.now += 1
    shown.update(task, description="hospital export: 40% (X-Progress)")
    shown.update(task, description="hospital export: 40% (X-Progress)")
    assert lines_of(output) == [
        "hospital export: kicked off: 0, 0 pages, 0.0 s",
        "hospital export: 40% (X-Progress): 0, 0 pages, 1.0 s",
    ]


def test_a_short_task_is_one_line_at_the_end() -> None:
    shown, clock, output = progress(in_bytes)
    task = shown.add_task("clinic: reading", total=2_500_000)
    shown.advance(task, 1_000_000)
    clock.now += 0.5
    shown.stop()
    assert lines_of(output) == ["clinic: reading: 1.0 MB/2.5 MB (40%), 0.5 s"]


def test_lines_carry_no_escape_codes_even_with_markup_in_a_description() -> None:
    shown, _clock, output = progress()
    task = shown.add_task("[bold]clinic[/]: mapping", total=1)
    shown.advance(task)
    assert lines_of(output) == ["[bold]clinic[/]: mapping: 1/1 (100%), 0.0 s"]
    assert "\x1b" not in output.getvalue()
