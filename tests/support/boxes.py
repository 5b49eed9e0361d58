"""A small curses program for the real-program tests: boxes in line drawing, on the alternate screen.

Run as ``python boxes.py``: curses enters the alternate screen, draws a border
round the screen and a titled box with a tee and a cross in it (ncurses draws
them with the terminal's line-drawing character set, ``smacs``), and waits for
keys: ``n`` draws one more box below the first and counts it, ``q`` leaves
(curses goes back to the main screen).
"""

from __future__ import annotations

import curses
import locale


def main(stdscr: curses.window) -> None:
    curses.curs_set(0)
    stdscr.box()
    box = stdscr.derwin(6, 24, 2, 4)
    box.box()
    box.addstr(0, 2, " boxes ready ")
    box.hline(2, 1, curses.ACS_HLINE, 22)
    box.addch(2, 0, curses.ACS_LTEE)
    box.addch(2, 23, curses.ACS_RTEE)
    box.vline(3, 12, curses.ACS_VLINE, 2)
    box.addch(2, 12, curses.ACS_TTEE)
    box.addstr(1, 2, "tees and a cross")
    stdscr.addch(10, 10, curses.ACS_PLUS)
    stdscr.refresh()
    count = 0
    while True:
        key = stdscr.getch()
        if key == ord("q"):
            return
        if key == ord("n"):
            count += 1
            more = stdscr.derwin(3, 16, 11, 4 + 17 * (count - 1))
            more.box()
            more.addstr(1, 2, f"box {count}")
            stdscr.addstr(15, 4, f"drawn {count}")
            stdscr.refresh()


if __name__ == "__main__":
    locale.setlocale(locale.LC_ALL, "")
    curses.wrapper(main)
