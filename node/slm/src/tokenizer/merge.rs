//! Encoding a stretch of plain text (no specials): byte-level BPE by merge rank over the
//! pre-tokenizer's words, or SentencePiece by best score with `<0xXX>` byte fallback.

use super::pretokenize::pre_tokenize;
use super::{Kind, Tokenizer};
use std::collections::BinaryHeap;

impl Tokenizer {
    pub(super) fn encode_plain(&self, text: &str, at_start: bool, out: &mut Vec<u32>) {
        match self.kind {
            Kind::Bpe => {
                for word in pre_tokenize(self.pre, text) {
                    self.bpe_word(word, out);
                }
            }
            Kind::Spm => {
                let mut s = String::with_capacity(text.len() + 3);
                if self.add_space_prefix && at_start {
                    s.push('\u{2581}');
                }
                for ch in text.chars() {
                    s.push(if ch == ' ' { '\u{2581}' } else { ch });
                }
                self.spm(&s, out);
            }
        }
    }

    fn bpe_word(&self, word: &str, out: &mut Vec<u32>) {
        let mapped: String = word
            .bytes()
            .map(|b| self.byte_to_char[b as usize])
            .collect();
        if let Some(id) = self.ids.get(&mapped) {
            out.push(*id);
            return;
        }
        let mut parts: Vec<String> = mapped.chars().map(|c| c.to_string()).collect();
        while parts.len() > 1 {
            let mut best: Option<(u32, usize)> = None;
            for i in 0..parts.len() - 1 {
                if let Some(&r) = self.merges.get(&(parts[i].clone(), parts[i + 1].clone())) {
                    if best.is_none_or(|(br, _)| r < br) {
                        best = Some((r, i));
                    }
                }
            }
            let Some((_, i)) = best else { break };
            let right = parts.remove(i + 1);
            parts[i].push_str(&right);
        }
        for p in parts {
            match self.ids.get(&p) {
                Some(id) => out.push(*id),
                None => {
                    // not in vocab: fall back to single mapped chars, else unk
                    for ch in p.chars() {
                        if let Some(id) = self.ids.get(&ch.to_string()) {
                            out.push(*id);
                        } else if let Some(u) = self.unk {
                            out.push(u);
                        }
                    }
                }
            }
        }
    }

    fn spm(&self, text: &str, out: &mut Vec<u32>) {
        // symbols as a doubly linked list over char ranges
        struct Sym {
            start: usize,
            len: usize,
            prev: Option<usize>,
            next: Option<usize>,
        }
        let mut syms: Vec<Sym> = Vec::new();
        for (i, (start, ch)) in text.char_indices().enumerate() {
            syms.push(Sym {
                start,
                len: ch.len_utf8(),
                prev: i.checked_sub(1),
                next: None,
            });
        }
        let n = syms.len();
        for (i, sym) in syms.iter_mut().enumerate() {
            if i + 1 < n {
                sym.next = Some(i + 1);
            }
        }
        #[derive(PartialEq)]
        struct Cand {
            score: f32,
            left: usize,
            right: usize,
            len: usize,
        }
        impl Eq for Cand {}
        impl PartialOrd for Cand {
            fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(o))
            }
        }
        impl Ord for Cand {
            fn cmp(&self, o: &Self) -> std::cmp::Ordering {
                self.score
                    .total_cmp(&o.score)
                    .then_with(|| o.left.cmp(&self.left))
            }
        }
        let mut heap = BinaryHeap::new();
        let try_add = |heap: &mut BinaryHeap<Cand>, syms: &[Sym], l: usize, r: usize| {
            let start = syms[l].start;
            let len = syms[l].len + syms[r].len;
            if let Some(piece) = text.get(start..start + len) {
                if let Some(&id) = self.ids.get(piece) {
                    heap.push(Cand {
                        score: self.scores.get(id as usize).copied().unwrap_or(0.0),
                        left: l,
                        right: r,
                        len,
                    });
                }
            }
        };
        for i in 0..n.saturating_sub(1) {
            try_add(&mut heap, &syms, i, i + 1);
        }
        while let Some(c) = heap.pop() {
            let (l, r) = (c.left, c.right);
            if syms[l].len == 0
                || syms[r].len == 0
                || syms[l].len + syms[r].len != c.len
                || syms[l].next != Some(r)
            {
                continue;
            }
            syms[l].len += syms[r].len;
            syms[r].len = 0;
            syms[l].next = syms[r].next;
            if let Some(nx) = syms[r].next {
                syms[nx].prev = Some(l);
            }
            if let Some(p) = syms[l].prev {
                try_add(&mut heap, &syms, p, l);
            }
            if let Some(nx) = syms[l].next {
                try_add(&mut heap, &syms, l, nx);
            }
        }
        let mut cur = if n > 0 { Some(0) } else { None };
        while let Some(i) = cur {
            let s = &syms[i];
            let piece = &text[s.start..s.start + s.len];
            match self.ids.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        match self.byte_tokens[b as usize] {
                            Some(id) => out.push(id),
                            None => {
                                if let Some(u) = self.unk {
                                    out.push(u);
                                }
                            }
                        }
                    }
                }
            }
            cur = s.next;
        }
    }
}
