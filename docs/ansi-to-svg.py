#!/usr/bin/env python3
"""Renders a tmux screen (`tmux capture-pane -e -p`) to the SVG the README's screenshots use:
DejaVu Sans Mono 14px, 8.4 px a column, 17 px a row, the dark theme's background.

    tmux capture-pane -e -p -t SESSION | docs/ansi-to-svg.py > docs/demo-noc-wall.svg
"""
import re
import sys
from html import escape

FG, BG = "#d4d4d4", "#1e1e1e"
PALETTE = ["#000000", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#e5e5e5",
           "#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#e5e5e5"]
COL, ROW, PAD = 8.4, 17, 8


def colour256(n):
    if n < 16:
        return PALETTE[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return "#%02x%02x%02x" % (steps[n // 36], steps[n // 6 % 6], steps[n % 6])
    v = 8 + 10 * (n - 232)
    return "#%02x%02x%02x" % (v, v, v)


def sgr(params, st):
    codes = [int(p) if p else 0 for p in params.split(";")] if params else [0]
    i = 0
    while i < len(codes):
        c = codes[i]
        if c == 0:
            st.update(fg=None, bg=None, bold=False, rev=False)
        elif c == 1:
            st["bold"] = True
        elif c == 22:
            st["bold"] = False
        elif c == 7:
            st["rev"] = True
        elif c == 27:
            st["rev"] = False
        elif 30 <= c <= 37:
            st["fg"] = PALETTE[c - 30]
        elif 90 <= c <= 97:
            st["fg"] = PALETTE[c - 90 + 8]
        elif c == 39:
            st["fg"] = None
        elif 40 <= c <= 47:
            st["bg"] = PALETTE[c - 40]
        elif 100 <= c <= 107:
            st["bg"] = PALETTE[c - 100 + 8]
        elif c == 49:
            st["bg"] = None
        elif c in (38, 48) and i + 1 < len(codes):
            key = "fg" if c == 38 else "bg"
            if codes[i + 1] == 5 and i + 2 < len(codes):
                st[key] = colour256(codes[i + 2])
                i += 2
            elif codes[i + 1] == 2 and i + 4 < len(codes):
                st[key] = "#%02x%02x%02x" % tuple(codes[i + 2:i + 5])
                i += 4
        i += 1


def main():
    lines = sys.stdin.read().rstrip("\n").split("\n")
    cols = 0
    rows = []
    st = dict(fg=None, bg=None, bold=False, rev=False)
    for line in lines:
        runs, col = [], 0
        for part in re.split(r"(\x1b\[[0-9;]*m)", line):
            m = re.fullmatch(r"\x1b\[([0-9;]*)m", part)
            if m:
                sgr(m.group(1), st)
            elif part:
                fg, bg = st["fg"] or FG, st["bg"]
                if st["rev"]:
                    fg, bg = bg or BG, fg
                runs.append((col, part, fg, bg, st["bold"]))
                col += len(part)
        cols = max(cols, col)
        rows.append(runs)
    width = int(2 * PAD + cols * COL)
    height = len(rows) * ROW + 2 * PAD
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           'font-family="DejaVu Sans Mono,Menlo,Consolas,monospace" font-size="14">',
           f'<rect width="100%" height="100%" fill="{BG}"/>']
    for r, runs in enumerate(rows):
        y = PAD + (r + 1) * ROW - 4
        for col, text, fg, bg, bold in runs:
            x = PAD + col * COL
            if bg:
                out.append(f'<rect x="{x:.1f}" y="{y - 13}" width="{len(text) * COL:.1f}" '
                           f'height="{ROW}" fill="{bg}"/>')
            if text.strip():
                weight = ' font-weight="bold"' if bold else ""
                out.append(f'<text x="{x:.1f}" y="{y}" fill="{fg}"{weight} '
                           f'xml:space="preserve">{escape(text)}</text>')
    out.append("</svg>")
    print("\n".join(out))


main()
