//! The key/value cache of one sequence ([`KvCache`]): caller-owned, bounded, cloneable and
//! truncatable. The forward pass appends to it; nothing here computes.

/// Key/value cache of one sequence, owned by the caller. Bounded by `max_len` positions.
#[derive(Clone, Debug)]
pub struct KvCache {
    pub(super) k: Vec<Vec<f32>>,
    pub(super) v: Vec<Vec<f32>>,
    pub(super) tokens: Vec<u32>,
    pub(super) kv_dim: usize,
    pub(super) max_len: usize,
}

impl KvCache {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }
    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
    /// The most positions it will ever hold.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
    /// The tokens whose keys/values it holds.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }
    /// Drops everything after the first `len` positions.
    pub fn truncate(&mut self, len: usize) {
        if len >= self.tokens.len() {
            return;
        }
        self.tokens.truncate(len);
        for (k, v) in self.k.iter_mut().zip(self.v.iter_mut()) {
            k.truncate(len * self.kv_dim);
            v.truncate(len * self.kv_dim);
        }
    }
    /// Empties the cache (keeps the allocation).
    pub fn clear(&mut self) {
        self.truncate(0);
    }
    /// Bytes allocated for keys and values.
    pub fn memory_bytes(&self) -> usize {
        self.k
            .iter()
            .chain(self.v.iter())
            .map(|x| x.capacity() * 4)
            .sum()
    }
    /// A new cache holding a copy of the first `len` positions (at most what this one
    /// holds), with room for `extra` more positions reserved up front (still bounded by
    /// `max_len`): a sequence of a batch starts from the shared prefix this way.
    pub fn fork(&self, len: usize, extra: usize) -> KvCache {
        let len = len.min(self.tokens.len());
        let cap = (len + extra).min(self.max_len) * self.kv_dim;
        let copy = |src: &Vec<Vec<f32>>| -> Vec<Vec<f32>> {
            src.iter()
                .map(|l| {
                    let mut v = Vec::with_capacity(cap.max(len * self.kv_dim));
                    v.extend_from_slice(&l[..(len * self.kv_dim).min(l.len())]);
                    v
                })
                .collect()
        };
        KvCache {
            k: copy(&self.k),
            v: copy(&self.v),
            tokens: self.tokens[..len].to_vec(),
            kv_dim: self.kv_dim,
            max_len: self.max_len,
        }
    }
    /// Drops keys/values past `len` positions (after a failed step, before its tokens
    /// were recorded).
    pub(super) fn rollback_kv(&mut self, len: usize) {
        for (k, v) in self.k.iter_mut().zip(self.v.iter_mut()) {
            k.truncate(len * self.kv_dim);
            v.truncate(len * self.kv_dim);
        }
    }
    pub(super) fn push(&mut self, layer: usize, k: &[f32], v: &[f32]) {
        let max = self.max_len * self.kv_dim;
        for (buf, src) in [(&mut self.k[layer], k), (&mut self.v[layer], v)] {
            let need = buf.len() + src.len();
            if need > buf.capacity() {
                let target = need
                    .max(buf.capacity() * 2)
                    .max(64 * self.kv_dim)
                    .min(max.max(need));
                buf.reserve_exact(target - buf.len());
            }
            buf.extend_from_slice(src);
        }
    }
}
