"""Progress in a log file is one whole line per 10 %, never carriage-return frames; a terminal gets tqdm."""

from __future__ import annotations

import io
import re

from tqdm import tqdm

from moebius.progress import LineProgress, progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_file_gets_one_line_per_ten_percent() -> None:
    log = io.StringIO()
    with progress(total=200, desc="masks mat_large_512 v1", unit="mask", file=log) as bar:
        for _ in range(200):
            bar.update(1)
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert [int(re.search(r"(\d+)%", line).group(1)) for line in lines] == list(range(10, 101, 10))
    assert lines[3].startswith("masks mat_large_512 v1:  40% (80/200 mask)")
    assert "left" in lines[3] and "left" not in lines[-1]  # an estimate while running, none at the end


def test_big_jumps_and_an_unfinished_bar() -> None:
    log = io.StringIO()
    bar = progress(total=10, desc="img", file=log)
    bar.update(7)  # crosses 10..70 % at once: one line, not seven
    bar.close()  # stopped early (e.g. an error): the last state is still printed once
    bar.close()
    assert [line.split(":")[1].split("%")[0].strip() for line in log.getvalue().splitlines()] == ["70"]


def test_iterable_and_postfix() -> None:
    log = io.StringIO()
    seen = list(progress(range(5), desc="steps", file=log))
    assert seen == [0, 1, 2, 3, 4]
    assert log.getvalue().splitlines()[-1].startswith("steps: 100% (5/5 it)")
    log = io.StringIO()
    bar = progress(total=4, desc="train", file=log)
    bar.set_postfix(loss="0.1234")
    bar.update(4)
    assert log.getvalue().rstrip().endswith("[loss=0.1234]")


def test_bytes_are_scaled_and_unknown_totals_print_at_the_end() -> None:
    log = io.StringIO()
    with progress(total=3 * 1024 ** 2, desc="places365.tar", unit="B", unit_scale=True, file=log) as bar:
        bar.update(3 * 1024 ** 2)
    assert "(3.00MB/3.00MB)" in log.getvalue()
    log = io.StringIO()
    with progress(total=None, desc="stream", file=log) as bar:
        bar.update(5)
    assert log.getvalue().startswith("stream: 5 it")


def test_disabled_prints_nothing_and_a_terminal_gets_tqdm() -> None:
    log = io.StringIO()
    with progress(total=3, desc="rank 1", disable=True, file=log) as bar:
        bar.update(3)
    assert log.getvalue() == ""
    tty = _Tty()
    bar = progress(total=3, desc="tty", file=tty)
    assert isinstance(bar, tqdm) and not isinstance(bar, LineProgress)
    bar.update(3)
    bar.close()
    assert "\r" in tty.getvalue()  # redrawn in place, as a terminal expects
