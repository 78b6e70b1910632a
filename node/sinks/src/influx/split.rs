//! [`Splitter`]: which lines of a batch to send next after InfluxDB refused part of it — pure,
//! no I/O, no text building.
//!
//! - **400 / 422 (bad data).** When the server names the bad lines (by number, or by quoting
//!   them), those lines are set aside as rejected and the rest of the chunk is sent again
//!   (InfluxDB overwrites an identical point, so lines a partial write already stored are
//!   stored once). When it names none, the chunk is cut in halves until the bad lines stand
//!   alone. One bad point never costs the others.
//! - **413 (too large).** The chunk is cut in halves until it fits; a single line that still
//!   does not fit is rejected as too large.
//!
//! Lines are numbered by their index in the batch (0-based); the server's numbers are 1-based
//! within the chunk it was sent. Chunks are sent in the batch's order. The HTTP side
//! (`http.rs`) builds the bodies and talks to the server; this module only decides.

/// A line set aside for good, with the server's reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Index of the line in the batch (0-based).
    pub line: usize,
    /// Why (the server's message, or "too large for one request").
    pub reason: String,
    /// True when the server refused the line's size (413), false for bad data (400).
    pub too_large: bool,
}

/// What the server said to the chunk from [`Splitter::next`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// Stored (2xx).
    Written,
    /// Bad data (400/422). `named` are positions in the chunk (0-based) the server blamed —
    /// see [`positions`]; empty when it named none. `reason` is its message.
    BadData {
        /// Positions in the chunk the server named.
        named: &'a [usize],
        /// The server's message.
        reason: &'a str,
    },
    /// Too large (413).
    TooLarge,
}

/// The lines of one batch still to send, in chunks, and what became of the others.
#[derive(Clone, Debug)]
pub struct Splitter {
    /// Chunks still to send; the last is next (so the batch's order is kept).
    todo: Vec<Vec<usize>>,
    written: usize,
    rejected: Vec<Rejection>,
    requests: usize,
}

impl Splitter {
    /// All `lines` lines in chunks of at most `max_lines` (0: one chunk).
    pub fn new(lines: usize, max_lines: usize) -> Self {
        let max = if max_lines == 0 {
            lines.max(1)
        } else {
            max_lines
        };
        let all: Vec<usize> = (0..lines).collect();
        let mut todo: Vec<Vec<usize>> = all.chunks(max).map(<[usize]>::to_vec).collect();
        todo.reverse();
        Self {
            todo,
            written: 0,
            rejected: Vec::new(),
            requests: 0,
        }
    }

    /// The lines (batch indices, ascending) to send next; `None` when every line is written or
    /// rejected.
    pub fn next(&self) -> Option<&[usize]> {
        self.todo.last().map(Vec::as_slice)
    }

    /// Takes the server's reply to the chunk from [`next`](Self::next).
    pub fn reply(&mut self, r: Reply<'_>) {
        let Some(chunk) = self.todo.pop() else { return };
        self.requests += 1;
        match r {
            Reply::Written => self.written += chunk.len(),
            Reply::BadData { named, reason } => {
                let mut blamed = vec![false; chunk.len()];
                let mut any = false;
                for &p in named {
                    if let Some(b) = blamed.get_mut(p) {
                        any |= !*b;
                        *b = true;
                    }
                }
                if !any && chunk.len() > 1 {
                    self.halve(chunk);
                    return;
                }
                if !any {
                    // One line, refused without a name: it is the bad one.
                    blamed.iter_mut().for_each(|b| *b = true);
                }
                let mut rest = Vec::with_capacity(chunk.len());
                for (&line, &bad) in chunk.iter().zip(&blamed) {
                    if bad {
                        self.rejected.push(Rejection {
                            line,
                            reason: reason.to_string(),
                            too_large: false,
                        });
                    } else {
                        rest.push(line);
                    }
                }
                if !rest.is_empty() {
                    self.todo.push(rest);
                }
            }
            Reply::TooLarge => match chunk.as_slice() {
                [line] => self.rejected.push(Rejection {
                    line: *line,
                    reason: "too large for one request (HTTP 413)".into(),
                    too_large: true,
                }),
                _ => self.halve(chunk),
            },
        }
    }

    fn halve(&mut self, mut chunk: Vec<usize>) {
        let back = chunk.split_off(chunk.len() / 2);
        self.todo.push(back);
        self.todo.push(chunk);
    }

    /// True when every line is written or rejected.
    pub fn is_done(&self) -> bool {
        self.todo.is_empty()
    }

    /// Lines written so far.
    pub fn written(&self) -> usize {
        self.written
    }

    /// Lines rejected so far, in the order they were found.
    pub fn rejected(&self) -> &[Rejection] {
        &self.rejected
    }

    /// Takes the rejections out.
    pub fn into_rejected(self) -> Vec<Rejection> {
        self.rejected
    }

    /// Replies taken so far (one per request sent).
    pub fn requests(&self) -> usize {
        self.requests
    }

    /// Largest chunk still to send (0 when done).
    pub fn largest_pending(&self) -> usize {
        self.todo.iter().map(Vec::len).max().unwrap_or(0)
    }
}

/// Positions in `chunk` (0-based) that the server named: by its 1-based line `numbers` within
/// the chunk, and by quoting a line's text (`texts`, compared without the line end). Numbers
/// outside the chunk and quotes that match no line are ignored.
pub fn positions(
    chunk: &[usize],
    lines: &[&str],
    numbers: &[usize],
    texts: &[String],
) -> Vec<usize> {
    let mut out: Vec<usize> = numbers
        .iter()
        .filter(|&&n| n >= 1 && n <= chunk.len())
        .map(|&n| n - 1)
        .collect();
    if !texts.is_empty() {
        for (pos, &line) in chunk.iter().enumerate() {
            let Some(l) = lines.get(line) else { continue };
            let l = l.trim_end_matches(['\n', '\r']);
            if texts.iter().any(|t| t == l) {
                out.push(pos);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// How the simulated server names bad lines in a 400.
    #[derive(Clone, Copy, Debug)]
    enum Naming {
        /// Every bad line of the chunk by number (InfluxDB 2: `line 3: …` per line).
        All,
        /// Only the first (InfluxDB 3 / Cloud: `"line": 3`).
        First,
        /// By quoting the first bad line's text (InfluxDB 1.x/2.x `unable to parse '…'`).
        Quote,
        /// None (a proxy, an old server): the splitter must bisect.
        None,
    }

    /// Runs a batch of `n` lines through the splitter against a server that refuses `bad`
    /// lines and chunks of more than `cap` lines; returns (lines in 2xx answers, rejected).
    fn run(
        n: usize,
        bad: &BTreeSet<usize>,
        cap: usize,
        naming: Naming,
        max_lines: usize,
    ) -> (Vec<usize>, Splitter) {
        let text: Vec<String> = (0..n).map(|i| format!("m v={i} {i}\n")).collect();
        let lines: Vec<&str> = text.iter().map(String::as_str).collect();
        let mut s = Splitter::new(n, max_lines);
        let mut stored = Vec::new();
        let mut guard = 0;
        while let Some(chunk) = s.next() {
            guard += 1;
            assert!(guard < 10 * n + 10, "splitting does not end");
            let chunk = chunk.to_vec();
            if chunk.len() > cap {
                s.reply(Reply::TooLarge);
                continue;
            }
            let bad_pos: Vec<usize> = (0..chunk.len())
                .filter(|&p| bad.contains(&chunk[p]))
                .collect();
            if bad_pos.is_empty() {
                stored.extend_from_slice(&chunk);
                s.reply(Reply::Written);
                continue;
            }
            let (numbers, texts): (Vec<usize>, Vec<String>) = match naming {
                Naming::All => (bad_pos.iter().map(|p| p + 1).collect(), vec![]),
                Naming::First => (vec![bad_pos[0] + 1], vec![]),
                Naming::Quote => (
                    vec![],
                    vec![lines[chunk[bad_pos[0]]].trim_end().to_string()],
                ),
                Naming::None => (vec![], vec![]),
            };
            let named = positions(&chunk, &lines, &numbers, &texts);
            s.reply(Reply::BadData {
                named: &named,
                reason: "unable to parse",
            });
        }
        (stored, s)
    }

    fn naming() -> impl Strategy<Value = Naming> {
        prop_oneof![
            Just(Naming::All),
            Just(Naming::First),
            Just(Naming::Quote),
            Just(Naming::None)
        ]
    }

    proptest! {
        #[test]
        fn every_good_line_is_written_exactly_once_and_bad_ones_counted_exactly(
            n in 1usize..300,
            bad_seed in proptest::collection::vec(0usize..300, 0..12),
            cap in 1usize..400,
            naming in naming(),
            max_lines in 0usize..350,
        ) {
            let bad: BTreeSet<usize> = bad_seed.into_iter().filter(|&b| b < n).collect();
            let (mut stored, s) = run(n, &bad, cap, naming, max_lines);
            let stored_len = stored.len();
            stored.sort_unstable();
            stored.dedup();
            prop_assert_eq!(stored.len(), stored_len, "a good line written twice");
            let good: Vec<usize> = (0..n).filter(|i| !bad.contains(i)).collect();
            prop_assert_eq!(&stored, &good);
            let rejected: BTreeSet<usize> = s.rejected().iter().map(|r| r.line).collect();
            prop_assert_eq!(rejected.len(), s.rejected().len(), "a line rejected twice");
            // Bad lines are rejected as bad; lines over the cap (only when cap is 0) as too large.
            prop_assert_eq!(&rejected, &bad);
            prop_assert!(s.rejected().iter().all(|r| !r.too_large));
            prop_assert_eq!(s.written() + s.rejected().len(), n);
            prop_assert!(s.is_done());
        }
    }

    #[test]
    fn named_lines_cost_one_request_each_round_not_a_bisection() {
        let bad: BTreeSet<usize> = [3, 4000].into();
        let (stored, s) = run(5000, &bad, usize::MAX, Naming::All, 0);
        assert_eq!(stored.len(), 4998);
        assert_eq!(s.requests(), 2, "the refused batch, then the 4,998 others");
        let (_, s) = run(5000, &bad, usize::MAX, Naming::First, 0);
        assert_eq!(s.requests(), 3);
        let (stored, s) = run(5000, &bad, usize::MAX, Naming::None, 0);
        assert_eq!(stored.len(), 4998);
        assert!(
            s.requests() <= 2 * 2 * 13 + 1,
            "bisection: {}",
            s.requests()
        );
    }

    #[test]
    fn too_large_halves_until_it_fits_and_a_single_line_too_large_is_rejected() {
        let (stored, s) = run(1000, &BTreeSet::new(), 300, Naming::All, 0);
        assert_eq!(stored, (0..1000).collect::<Vec<_>>(), "in order");
        assert!(s.rejected().is_empty());
        // 1000 → 500 → 250: 1 + 2 + 4 refusals/answers.
        assert_eq!(s.requests(), 1 + 2 + 4);
        let mut s = Splitter::new(1, 0);
        s.reply(Reply::TooLarge);
        assert!(s.is_done());
        assert!(s.rejected()[0].too_large);
        assert_eq!(s.written(), 0);
    }

    #[test]
    fn positions_ignore_numbers_outside_the_chunk_and_quotes_of_no_line() {
        let lines = ["a 1\n", "b 2\n", "c 3\n", "d 4\n"];
        let chunk = [1, 3];
        assert_eq!(positions(&chunk, &lines, &[0, 2, 3, 99], &[]), vec![1]);
        assert_eq!(
            positions(
                &chunk,
                &lines,
                &[],
                &["b 2".into(), "zzz".into(), "a 1".into()]
            ),
            vec![0],
            "a quote of a line not in the chunk names nothing"
        );
        assert_eq!(positions(&chunk, &lines, &[1], &["b 2".into()]), vec![0]);
    }

    #[test]
    fn a_chunk_cap_pre_splits_in_order() {
        let s = Splitter::new(5, 2);
        assert_eq!(s.next(), Some(&[0, 1][..]));
        assert_eq!(s.largest_pending(), 2);
        let mut s = Splitter::new(0, 0);
        assert!(s.is_done());
        s.reply(Reply::Written);
        assert_eq!(s.requests(), 0, "a reply without a chunk changes nothing");
    }
}
