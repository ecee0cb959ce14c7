//! Aligned text tables that can be printed in pieces: each flushed batch of rows widens the columns as
//! needed (never narrows them) and repeats the header when it did, so a table streamed page by page
//! stays readable without buffering it whole.
//! Colours are applied after padding, so escape codes never disturb the alignment.

use std::io::{self, Write};

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// ANSI colours used by ribctl.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Bold,
    Green,
    Yellow,
    Red,
    Cyan,
    Dim,
}

impl Color {
    fn code(self) -> &'static str {
        match self {
            Color::Bold => "1",
            Color::Green => "32",
            Color::Yellow => "33",
            Color::Red => "31",
            Color::Cyan => "36",
            Color::Dim => "2",
        }
    }
}

/// Output style: colours on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub const PLAIN: Style = Style { color: false };

    pub fn paint(&self, c: Option<Color>, s: &str) -> String {
        match c {
            Some(c) if self.color && !s.is_empty() => format!("\x1b[{}m{s}\x1b[0m", c.code()),
            _ => s.to_string(),
        }
    }
}

/// One cell: text and an optional colour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub color: Option<Color>,
}

impl Cell {
    pub fn colored(text: impl Into<String>, color: Option<Color>) -> Cell {
        Cell {
            text: text.into(),
            color,
        }
    }
}

impl<T: Into<String>> From<T> for Cell {
    fn from(t: T) -> Cell {
        Cell {
            text: t.into(),
            color: None,
        }
    }
}

/// A table printed in batches.
#[derive(Debug, Clone)]
pub struct Table {
    heads: Vec<(String, Align)>,
    widths: Vec<usize>,
    rows: Vec<Vec<Cell>>,
    header_done: bool,
    indent: usize,
}

impl Table {
    pub fn new(heads: &[(&str, Align)]) -> Table {
        Table {
            heads: heads.iter().map(|(h, a)| (h.to_string(), *a)).collect(),
            widths: heads.iter().map(|(h, _)| width(h)).collect(),
            rows: Vec::new(),
            header_done: false,
            indent: 0,
        }
    }

    /// Makes column `col` at least `w` characters wide (so a streamed table rarely has to widen).
    pub fn min_width(mut self, col: usize, w: usize) -> Table {
        if let Some(x) = self.widths.get_mut(col) {
            *x = (*x).max(w);
        }
        self
    }

    /// Indents every line by `n` spaces.
    pub fn indent(mut self, n: usize) -> Table {
        self.indent = n;
        self
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Prints the header (the first time, and again whenever these rows need wider columns than
    /// the rows before them) and the rows added since the last flush.
    pub fn flush(&mut self, out: &mut dyn Write, style: Style) -> io::Result<()> {
        let before = self.widths.clone();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if i < self.widths.len() {
                    self.widths[i] = self.widths[i].max(width(&c.text));
                }
            }
        }
        // The last column is never padded: only the others move the alignment.
        let n = self.widths.len().saturating_sub(1);
        if self.header_done && before[..n] != self.widths[..n] {
            self.header_done = false;
        }
        if !self.header_done {
            self.header_done = true;
            let cells: Vec<Cell> = self
                .heads
                .iter()
                .map(|(h, _)| Cell::colored(h.clone(), Some(Color::Bold)))
                .collect();
            self.line(out, &cells, style)?;
        }
        let rows = std::mem::take(&mut self.rows);
        for r in &rows {
            self.line(out, r, style)?;
        }
        Ok(())
    }

    fn line(&self, out: &mut dyn Write, cells: &[Cell], style: Style) -> io::Result<()> {
        let mut s = " ".repeat(self.indent);
        let last = cells.len().min(self.widths.len()).saturating_sub(1);
        for (i, c) in cells.iter().enumerate().take(self.widths.len()) {
            let pad = self.widths[i].saturating_sub(width(&c.text));
            let text = style.paint(c.color, &c.text);
            match self.heads[i].1 {
                Align::Left if i == last => s.push_str(&text),
                Align::Left => {
                    s.push_str(&text);
                    s.push_str(&" ".repeat(pad));
                }
                Align::Right => {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(&text);
                }
            }
            if i != last {
                s.push_str("  ");
            }
        }
        writeln!(out, "{}", s.trim_end())
    }
}

fn width(s: &str) -> usize {
    s.chars().count()
}
