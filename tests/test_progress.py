"""utils.progress: the text of the progress line, and when it is written to a terminal and elsewhere."""

import io
import sys
import threading
from types import SimpleNamespace

import pytest

from utils import progress
from utils.progress import ProgressLine, format_duration


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def clock(monkeypatch):
    state = SimpleNamespace(now=500.0)
    monkeypatch.setattr(progress, "time", SimpleNamespace(monotonic=lambda: state.now))
    return state


def _advance_at(line: ProgressLine, clock, moments: list[float], failed_at=()) -> None:
    start = clock.now
    for number, moment in enumerate(moments):
        clock.now = start + moment
        line.advance(failed=number in failed_at)


# --- render ----------------------------------------------------------------------------------------

def test_render_shows_done_total_failed_rate_and_eta(clock):
    line = ProgressLine(100, stream=io.StringIO())
    _advance_at(line, clock, [1.0] * 40, failed_at={3, 7})
    clock.now += 24.0  # 40 done in 25 s: 1.6/s, 60 left: 37.5 s
    assert line.render() == "40/100 done, 2 failed, 1.6/s, ETA 38s"


def test_render_before_anything_is_done(clock):
    line = ProgressLine(10, stream=io.StringIO())
    assert line.render() == "0/10 done, 0 failed, 0.00/s, ETA ?"
    clock.now += 3.0
    assert line.render() == "0/10 done, 0 failed, 0.00/s, ETA ?"


def test_render_slow_rates_and_long_etas(clock):
    line = ProgressLine(1000, stream=io.StringIO())
    clock.now += 20.0
    line.advance()
    clock.now += 30.0  # 1 done in 50 s: 0.02/s, 999 left: 49950 s
    assert line.render() == "1/1000 done, 0 failed, 0.02/s, ETA 13h52m"


def test_render_when_finished(clock):
    line = ProgressLine(2, stream=io.StringIO())
    clock.now += 1.0
    line.advance()
    line.advance(failed=True)
    assert line.render() == "2/2 done, 1 failed, 2.0/s, ETA 0s"


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (0.4, "0s"), (59.4, "59s"), (59.6, "1m00s"), (185, "3m05s"), (3599, "59m59s"),
    (3600, "1h00m"), (7620, "2h07m"), (-3, "0s"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


# --- A plain stream (log file, CI) -----------------------------------------------------------------

def test_plain_stream_gets_a_line_at_most_every_n_seconds_and_always_the_last(clock):
    stream = io.StringIO()
    line = ProgressLine(7, stream=stream, every_seconds=5.0)
    _advance_at(line, clock, [1.0, 5.5, 6.0, 10.4, 10.6, 11.0, 11.5])
    lines = stream.getvalue().splitlines()
    assert [text.split(" done")[0] for text in lines] == ["2/7", "5/7", "7/7"]
    assert "\r" not in stream.getvalue()
    assert stream.getvalue().endswith("\n")
    assert lines[-1].startswith("7/7 done, 0 failed,")


def test_short_run_on_a_plain_stream_prints_only_the_final_line(clock):
    stream = io.StringIO()
    line = ProgressLine(3, stream=stream, every_seconds=5.0)
    _advance_at(line, clock, [0.1, 0.2, 0.3], failed_at={1})
    assert stream.getvalue() == "3/3 done, 1 failed, 10.0/s, ETA 0s\n"


# --- A terminal ------------------------------------------------------------------------------------

def test_terminal_redraws_in_place_and_ends_with_a_newline(clock):
    stream = FakeTerminal()
    line = ProgressLine(3, stream=stream, every_seconds=5.0)
    _advance_at(line, clock, [1.0, 1.5, 2.0])
    output = stream.getvalue()
    assert output.count("\r") == 3
    assert output.count("\n") == 1 and output.endswith("\n")
    frames = output.split("\r")[1:]
    assert [frame.split(" done")[0] for frame in frames] == ["1/3", "2/3", "3/3"]


def _screen(output: str) -> list[str]:
    """What a terminal shows for `output`: "\r" moves to the start of the line, text overwrites."""
    lines, current, cursor = [], [], 0
    for char in output:
        if char == "\r":
            cursor = 0
        elif char == "\n":
            lines.append("".join(current))
            current, cursor = [], 0
        else:
            if cursor < len(current):
                current[cursor] = char
            else:
                current.append(char)
            cursor += 1
    return lines + ["".join(current)]


def test_terminal_leaves_no_remains_of_a_longer_previous_line(clock):
    stream = FakeTerminal()
    line = ProgressLine(100, stream=stream)
    clock.now += 100.0
    line.advance()  # "1/100 done, 0 failed, 0.01/s, ETA 2h45m"
    widths = [len(line.render())]
    for _ in range(98):
        clock.now += 0.0001
        line.advance()  # the ETA shrinks to seconds: a shorter line
        widths.append(len(line.render()))
        screen = _screen(stream.getvalue())
        assert len(screen) == 1 and screen[0].rstrip() == line.render()
    assert min(widths) < widths[0]
    line.advance()
    last = line.render()
    # The final line is clean and ends with a newline.
    assert [text.rstrip() for text in _screen(stream.getvalue())] == [last, ""]


def test_stream_defaults_to_stderr_read_when_created(monkeypatch):
    fake = io.StringIO()
    monkeypatch.setattr(sys, "stderr", fake)
    line = ProgressLine(1, every_seconds=0.0)
    line.advance()
    assert fake.getvalue().startswith("1/1 done, 0 failed,")


def test_a_stream_that_cannot_tell_if_it_is_a_terminal_is_treated_as_plain(clock):
    class Closedish(io.StringIO):
        def isatty(self):
            raise ValueError("I/O operation on closed file")

    stream = Closedish()
    line = ProgressLine(1, stream=stream)
    line.advance()
    assert "\r" not in stream.getvalue() and stream.getvalue().startswith("1/1 done")


def test_advance_from_many_threads_counts_every_item():
    stream = io.StringIO()
    line = ProgressLine(800, stream=stream, every_seconds=3600)
    threads = [threading.Thread(target=lambda: [line.advance(failed=i % 2 == 0) for i in range(100)])
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert (line.done, line.failed) == (800, 400)
    assert stream.getvalue().startswith("800/800 done, 400 failed,")
    assert stream.getvalue().count("\n") == 1
