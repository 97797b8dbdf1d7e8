//! Numbers in block glyphs (3 columns × 5 rows of `█▀▄`) for a wall screen read from across
//! the room; falls back to plain digits where the area is too small. Imports nothing from the
//! crate.
//!
//! Hand-written: a font of ten digits is smaller than any crate that would draw it, and the
//! wall needs to know a number's width before it lays the counters out.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;

/// Rows of a block digit.
pub const DIGIT_HEIGHT: u16 = 5;
/// Columns of a block digit and the gap after it.
pub const DIGIT_WIDTH: u16 = 3;
const GAP: u16 = 1;

const FONT: [[&str; 5]; 10] = [
    ["█▀█", "█ █", "█ █", "█ █", "▀▀▀"],
    [" ▀█", "  █", "  █", "  █", "  ▀"],
    ["▀▀█", "  █", "█▀▀", "█  ", "▀▀▀"],
    ["▀▀█", "  █", " ▀█", "  █", "▀▀▀"],
    ["█ █", "█ █", "▀▀█", "  █", "  ▀"],
    ["█▀▀", "█  ", "▀▀█", "  █", "▀▀▀"],
    ["█▀▀", "█  ", "█▀█", "█ █", "▀▀▀"],
    ["▀▀█", "  █", "  █", "  █", "  ▀"],
    ["█▀█", "█ █", "█▀█", "█ █", "▀▀▀"],
    ["█▀█", "█ █", "▀▀█", "  █", "▀▀▀"],
];

/// The columns `n` takes in block digits.
pub fn big_width(n: u64) -> u16 {
    let digits = u16::try_from(n.to_string().len()).unwrap_or(u16::MAX / 4);
    digits * (DIGIT_WIDTH + GAP) - GAP
}

/// The five rows of `n` in block digits.
pub fn big_lines(n: u64) -> [String; 5] {
    let mut rows: [String; 5] = Default::default();
    for (i, d) in n.to_string().bytes().enumerate() {
        let glyph = FONT[usize::from(d - b'0')];
        for (row, part) in rows.iter_mut().zip(glyph) {
            if i > 0 {
                row.push(' ');
            }
            row.push_str(part);
        }
    }
    rows
}

/// Draws `n` centred in `area`: in block digits when they fit, else as plain digits on the
/// middle row. Returns whether block digits were drawn.
pub fn draw_number(buf: &mut Buffer, area: Rect, n: u64, style: Style) -> bool {
    if area.width == 0 || area.height == 0 {
        return false;
    }
    let width = big_width(n);
    if width <= area.width && DIGIT_HEIGHT <= area.height {
        let x = area.x + (area.width - width) / 2;
        let y = area.y + (area.height - DIGIT_HEIGHT) / 2;
        for (i, row) in big_lines(n).iter().enumerate() {
            buf.set_string(x, y + i as u16, row, style);
        }
        true
    } else {
        let text = n.to_string();
        let w = u16::try_from(text.len())
            .unwrap_or(area.width)
            .min(area.width);
        let x = area.x + (area.width - w) / 2;
        buf.set_stringn(x, area.y + area.height / 2, &text, usize::from(w), style);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_digits_are_three_by_five_with_a_gap() {
        assert_eq!(big_width(7), 3);
        assert_eq!(big_width(42), 7);
        assert_eq!(
            big_lines(10),
            [
                " ▀█ █▀█".to_string(),
                "  █ █ █".into(),
                "  █ █ █".into(),
                "  █ █ █".into(),
                "  ▀ ▀▀▀".into()
            ]
        );
    }

    #[test]
    fn a_small_area_gets_plain_digits() {
        let mut buf = Buffer::empty(Rect::new(0, 0, 6, 3));
        assert!(!draw_number(
            &mut buf,
            Rect::new(0, 0, 6, 3),
            123,
            Style::default()
        ));
        let row: String = (0..6).map(|x| buf[(x, 1)].symbol().to_string()).collect();
        assert_eq!(row, " 123  ");
        let mut big = Buffer::empty(Rect::new(0, 0, 12, 5));
        assert!(draw_number(
            &mut big,
            Rect::new(0, 0, 12, 5),
            123,
            Style::default()
        ));
    }
}
