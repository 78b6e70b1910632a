//! The vocabulary constraint of decoding: which tokens may come next so that the answer only
//! uses the words of a request's [`Vocabulary`].
//!
//! Words are defined by core ([`millwright_core::llm::split_words`]): runs of word bytes, a `.`
//! between digits inside a number, ASCII lower case for comparison. [`Constraint`] is a byte
//! automaton over a trie of the allowed words: its state is "between words", "inside a word
//! that is a prefix of an allowed word", or "after a number and a `.`" (still undecided between
//! `78.4` and a full stop). A token is allowed when feeding its bytes keeps the automaton alive:
//! every completed word is allowed, the trailing partial word is a prefix of an allowed word,
//! and every separator is whitespace or allowed punctuation. End of sequence is allowed only
//! where the text may end (no unfinished word).
//!
//! [`TokenTrie`] is the prefix tree of every token's bytes, built once per loaded model; the
//! allowed set of a step is one walk of it together with the automaton, pruning a whole subtree
//! as soon as its bytes leave the vocabulary, so a step costs what the few live branches cost,
//! not the ~49k tokens of the vocabulary. Pure, no I/O.

use crate::tokenizer::Tokenizer;
use millwright_core::llm::{is_word_byte, Vocabulary};

/// Where the automaton is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WordState {
    /// Between words.
    Boundary,
    /// Inside a word: `node` of the word trie; `digit` when its last byte is a digit.
    Word {
        /// Trie node of the partial word.
        node: u32,
        /// The last byte was an ASCII digit.
        digit: bool,
    },
    /// After a digit and a `.`: `node` is the word before the dot.
    Dot {
        /// Trie node of the word before the dot.
        node: u32,
    },
}

#[derive(Clone, Debug, Default)]
struct Node {
    children: Vec<(u8, u32)>,
    terminal: bool,
}

/// The byte automaton of a vocabulary (built once per request).
#[derive(Clone, Debug)]
pub struct Constraint {
    nodes: Vec<Node>,
    punct: [bool; 128],
}

impl Constraint {
    /// The automaton of `v`.
    pub fn new(v: &Vocabulary) -> Self {
        let mut nodes = vec![Node::default()];
        for w in v.all_words() {
            let mut at = 0usize;
            for &b in w.as_bytes() {
                let next = nodes[at]
                    .children
                    .iter()
                    .find(|(c, _)| *c == b)
                    .map(|(_, n)| *n as usize);
                at = match next {
                    Some(n) => n,
                    None => {
                        nodes.push(Node::default());
                        let n = nodes.len() - 1;
                        nodes[at].children.push((b, n as u32));
                        n
                    }
                };
            }
            nodes[at].terminal = true;
        }
        let mut punct = [false; 128];
        for c in v.punctuation() {
            if c.is_ascii() {
                punct[c as usize] = true;
            }
        }
        Self { nodes, punct }
    }

    fn child(&self, node: u32, b: u8) -> Option<u32> {
        self.nodes
            .get(node as usize)?
            .children
            .iter()
            .find(|(c, _)| *c == b)
            .map(|(_, n)| *n)
    }

    fn terminal(&self, node: u32) -> bool {
        self.nodes.get(node as usize).is_some_and(|n| n.terminal)
    }

    fn separator(&self, b: u8) -> bool {
        b.is_ascii_whitespace() || self.punct.get(b as usize).copied().unwrap_or(false)
    }

    fn step_at_boundary(&self, b: u8) -> Option<WordState> {
        if is_word_byte(b) {
            let node = self.child(0, b.to_ascii_lowercase())?;
            Some(WordState::Word {
                node,
                digit: b.is_ascii_digit(),
            })
        } else if self.separator(b) {
            Some(WordState::Boundary)
        } else {
            None
        }
    }

    /// The state after byte `b`, None when `b` leaves the vocabulary.
    pub fn step(&self, s: WordState, b: u8) -> Option<WordState> {
        match s {
            WordState::Boundary => self.step_at_boundary(b),
            WordState::Word { node, digit } => {
                if is_word_byte(b) {
                    let node = self.child(node, b.to_ascii_lowercase())?;
                    Some(WordState::Word {
                        node,
                        digit: b.is_ascii_digit(),
                    })
                } else if b == b'.' && digit {
                    Some(WordState::Dot { node })
                } else if self.terminal(node) {
                    self.step_at_boundary(b)
                } else {
                    None
                }
            }
            WordState::Dot { node } => {
                if b.is_ascii_digit() {
                    let dot = self.child(node, b'.')?;
                    let node = self.child(dot, b)?;
                    Some(WordState::Word { node, digit: true })
                } else if self.terminal(node) && self.separator(b'.') {
                    self.step_at_boundary(b)
                } else {
                    None
                }
            }
        }
    }

    /// The state after `bytes`, None when they leave the vocabulary.
    pub fn feed(&self, mut s: WordState, bytes: &[u8]) -> Option<WordState> {
        for &b in bytes {
            s = self.step(s, b)?;
        }
        Some(s)
    }

    /// Whether the text may end in state `s` (no unfinished word).
    pub fn can_end(&self, s: WordState) -> bool {
        match s {
            WordState::Boundary => true,
            WordState::Word { node, .. } => self.terminal(node),
            WordState::Dot { node } => self.terminal(node) && self.separator(b'.'),
        }
    }

    /// Whether all of `text` is allowed and may end there.
    pub fn accepts(&self, text: &str) -> bool {
        self.feed(WordState::Boundary, text.as_bytes())
            .is_some_and(|s| self.can_end(s))
    }
}

/// The prefix tree of every token's bytes (control tokens, which decode to nothing, are left
/// out). Stored flat: the edges of node `n` are `edges[first[n]..first[n + 1]]`, the tokens
/// that end at it `ids[tok_first[n]..tok_first[n + 1]]`.
#[derive(Clone, Debug, Default)]
pub struct TokenTrie {
    first: Vec<u32>,
    edges: Vec<(u8, u32)>,
    tok_first: Vec<u32>,
    ids: Vec<u32>,
}

impl TokenTrie {
    /// The trie of a tokenizer's tokens.
    pub fn of_tokenizer(t: &Tokenizer) -> Self {
        let n = t.vocab_size() as u32;
        Self::build((0..n).map(|id| (id, t.token_bytes(id))))
    }

    /// The trie of `(id, bytes)` pairs (empty byte strings are skipped).
    pub fn build<'a>(tokens: impl IntoIterator<Item = (u32, &'a [u8])>) -> Self {
        #[derive(Default)]
        struct B {
            children: Vec<(u8, u32)>,
            ids: Vec<u32>,
        }
        let mut nodes = vec![B::default()];
        for (id, bytes) in tokens {
            if bytes.is_empty() {
                continue;
            }
            let mut at = 0usize;
            for &b in bytes {
                let next = nodes[at]
                    .children
                    .iter()
                    .find(|(c, _)| *c == b)
                    .map(|(_, n)| *n as usize);
                at = match next {
                    Some(n) => n,
                    None => {
                        nodes.push(B::default());
                        let n = nodes.len() - 1;
                        nodes[at].children.push((b, n as u32));
                        n
                    }
                };
            }
            nodes[at].ids.push(id);
        }
        let mut t = TokenTrie::default();
        for n in &nodes {
            t.first.push(t.edges.len() as u32);
            t.edges.extend_from_slice(&n.children);
            t.tok_first.push(t.ids.len() as u32);
            t.ids.extend_from_slice(&n.ids);
        }
        t.first.push(t.edges.len() as u32);
        t.tok_first.push(t.ids.len() as u32);
        t
    }

    /// Nodes of the trie.
    pub fn len(&self) -> usize {
        self.first.len().saturating_sub(1)
    }

    /// True when it holds no token.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn edges_of(&self, n: u32) -> &[(u8, u32)] {
        let a = self.first.get(n as usize).copied().unwrap_or(0) as usize;
        let b = self.first.get(n as usize + 1).copied().unwrap_or(0) as usize;
        self.edges.get(a..b).unwrap_or(&[])
    }

    fn ids_of(&self, n: u32) -> &[u32] {
        let a = self.tok_first.get(n as usize).copied().unwrap_or(0) as usize;
        let b = self.tok_first.get(n as usize + 1).copied().unwrap_or(0) as usize;
        self.ids.get(a..b).unwrap_or(&[])
    }

    /// Puts into `out` every token whose bytes keep `c` alive from state `s` (unsorted;
    /// `stack` is scratch space kept between calls).
    pub fn allowed(
        &self,
        c: &Constraint,
        s: WordState,
        out: &mut Vec<u32>,
        stack: &mut Vec<(u32, WordState)>,
    ) {
        out.clear();
        stack.clear();
        if self.first.is_empty() {
            return;
        }
        stack.push((0, s));
        while let Some((node, st)) = stack.pop() {
            for &(b, child) in self.edges_of(node) {
                if let Some(next) = c.step(st, b) {
                    out.extend_from_slice(self.ids_of(child));
                    stack.push((child, next));
                }
            }
        }
    }
}

/// Sets every logit to −∞ except those of `allowed` and `extra` (kept as they were).
pub fn apply_mask(logits: &mut [f32], allowed: &[u32], extra: &[u32], kept: &mut Vec<(u32, f32)>) {
    kept.clear();
    for &id in allowed.iter().chain(extra) {
        if let Some(&l) = logits.get(id as usize) {
            kept.push((id, l));
        }
    }
    logits.fill(f32::NEG_INFINITY);
    for &(id, l) in kept.iter() {
        if let Some(x) = logits.get_mut(id as usize) {
            *x = l;
        }
    }
}

/// Byte length of the unfinished word at the end of `text` (what to cut when generation
/// stopped inside a word): trailing word bytes, and a `.` between digits inside them.
pub fn trailing_word_len(text: &str) -> usize {
    let b = text.as_bytes();
    let mut i = b.len();
    while i > 0 {
        let x = b[i - 1];
        let inner_dot = x == b'.'
            && i >= 2
            && b[i - 2].is_ascii_digit()
            && b.get(i).is_some_and(u8::is_ascii_digit);
        let trailing_dot = x == b'.' && i == b.len() && i >= 2 && b[i - 2].is_ascii_digit();
        if is_word_byte(x) || inner_dot || trailing_dot {
            i -= 1;
        } else {
            break;
        }
    }
    b.len() - i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(words: &str) -> Vocabulary {
        let mut v = Vocabulary::new();
        v.allow_text(words);
        v
    }

    #[test]
    fn automaton_follows_words_numbers_and_punctuation() {
        let c = Constraint::new(&vocab("the pump is at 78.4 °C 101 P"));
        assert!(c.accepts("The pump is at 78.4 °C."));
        assert!(c.accepts("P-101: the pump is at 78.4."));
        assert!(
            !c.accepts("The pump is at 78 °C."),
            "78 is not a number of the facts"
        );
        assert!(!c.accepts("The pump is at 78.45"));
        assert!(!c.accepts("The electric pump"));
        assert!(!c.accepts("The pump!"), "! is not allowed punctuation");
        assert!(
            !c.accepts("The pu"),
            "an unfinished word may not end the text"
        );
        let s = c.feed(WordState::Boundary, b"The pu").unwrap();
        assert!(!c.can_end(s));
        assert!(c.step(s, b'm').is_some());
        assert!(c.step(s, b'x').is_none());
        assert_eq!(trailing_word_len("The pu"), 2);
        assert_eq!(trailing_word_len("is 78."), 3);
        assert_eq!(trailing_word_len("is 78.4"), 4);
        assert_eq!(trailing_word_len("pump. "), 0);
    }

    #[test]
    fn mask_makes_electric_vehicle_impossible_on_a_small_tokenizer() {
        let toks: Vec<&[u8]> = vec![
            b"The",
            b" electric",
            b" vehicle",
            b" pump",
            b" is",
            b" hot",
            b".",
            b" ",
            b"e",
            b"l",
            b"ec",
            b"tric",
            b" v",
            b"eh",
            b"icle",
            b"p",
            b"ump",
            b" el",
            b"",
        ];
        let tt = TokenTrie::build(toks.iter().enumerate().map(|(i, b)| (i as u32, *b)));
        // unconstrained: everything but the empty token is possible
        let open = Constraint::new(&vocab("the electric vehicle pump is hot"));
        let (mut out, mut st) = (Vec::new(), Vec::new());
        let after_the = open.feed(WordState::Boundary, b"The").unwrap();
        tt.allowed(&open, after_the, &mut out, &mut st);
        assert!(out.contains(&1) && out.contains(&17));
        // constrained: no token can start "electric" or "vehicle", however it is spelled
        let c = Constraint::new(&vocab("the pump is hot"));
        let s = c.feed(WordState::Boundary, b"The").unwrap();
        tt.allowed(&c, s, &mut out, &mut st);
        out.sort_unstable();
        assert_eq!(
            out,
            vec![3, 4, 5, 6, 7],
            "only ' pump', ' is', ' hot', '.', ' '"
        );
        let s = c.feed(s, b" ").unwrap();
        tt.allowed(&c, s, &mut out, &mut st);
        out.sort_unstable();
        assert_eq!(
            out,
            vec![0, 3, 4, 5, 6, 7, 15],
            "after a space: 'The', ' pump', ' is', ' hot', '.', ' ', 'p'"
        );
        let mut logits = vec![1.0f32; toks.len()];
        apply_mask(&mut logits, &out, &[], &mut Vec::new());
        assert_eq!(logits.iter().filter(|l| l.is_finite()).count(), 7);
        assert!(logits[1].is_infinite() && logits[2].is_infinite());
    }
}
