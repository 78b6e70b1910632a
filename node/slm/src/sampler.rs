//! Choosing the next token from logits: greedy, or temperature / top-k / top-p sampling with a
//! seeded generator, after a repetition penalty. Pure and deterministic for a given seed.

use millwright_core::GenParams;

/// The seeded generator of sampling: core's SplitMix64 (the same seed gives the same sequence
/// everywhere).
pub use millwright_core::rng::SplitMix64 as Rng;

/// Picks tokens according to [`GenParams`].
#[derive(Clone, Debug)]
pub struct Sampler {
    rng: Rng,
    temperature: f64,
    top_p: f64,
    top_k: usize,
    repeat_penalty: f32,
    repeat_last_n: usize,
}

impl Sampler {
    /// A sampler for these parameters.
    pub fn new(p: &GenParams) -> Self {
        Self {
            rng: Rng::new(p.seed),
            temperature: p.temperature,
            top_p: p.top_p,
            top_k: p.top_k,
            repeat_penalty: p.repeat_penalty,
            repeat_last_n: p.repeat_last_n,
        }
    }

    /// Chooses the next token; `recent` are the tokens generated so far (penalised).
    pub fn sample(&mut self, logits: &mut [f32], recent: &[u32]) -> u32 {
        if self.repeat_penalty != 1.0 && self.repeat_penalty > 0.0 {
            let from = recent.len().saturating_sub(self.repeat_last_n);
            let mut seen: Vec<u32> = recent[from..].to_vec();
            seen.sort_unstable();
            seen.dedup();
            for t in seen {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = if *l >= 0.0 {
                        *l / self.repeat_penalty
                    } else {
                        *l * self.repeat_penalty
                    };
                }
            }
        }
        if self.temperature <= 0.0 || !self.temperature.is_finite() {
            return argmax(logits);
        }
        let t = self.temperature as f32;
        let mut cand: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, l)| (i as u32, *l / t))
            .collect();
        if cand.is_empty() {
            return 0;
        }
        cand.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if self.top_k > 0 && self.top_k < cand.len() {
            cand.truncate(self.top_k);
        }
        let max = cand[0].1;
        let mut probs: Vec<f64> = cand.iter().map(|c| f64::from(c.1 - max).exp()).collect();
        let sum: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= sum);
        if self.top_p > 0.0 && self.top_p < 1.0 {
            let mut acc = 0.0;
            let mut keep = probs.len();
            for (i, p) in probs.iter().enumerate() {
                acc += p;
                if acc >= self.top_p {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep);
            let s: f64 = probs.iter().sum();
            probs.iter_mut().for_each(|p| *p /= s);
        }
        let r = self.rng.next_f64();
        let mut acc = 0.0;
        for (i, p) in probs.iter().enumerate() {
            acc += p;
            if r < acc {
                return cand[i].0;
            }
        }
        cand[probs.len() - 1].0
    }
}

/// Index of the largest logit (the first on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut bv = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > bv {
            bv = v;
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_argmax_and_penalty_applies() {
        let p = GenParams {
            repeat_penalty: 10.0,
            ..GenParams::default()
        };
        let mut s = Sampler::new(&p);
        let mut l = vec![0.1, 2.0, 1.5];
        assert_eq!(s.sample(&mut l.clone(), &[]), 1);
        assert_eq!(s.sample(&mut l, &[1]), 2);
    }

    #[test]
    fn seeded_sampling_is_reproducible_and_respects_top_k() {
        let p = GenParams {
            temperature: 1.0,
            top_k: 2,
            repeat_penalty: 1.0,
            ..GenParams::default()
        };
        let logits = vec![1.0, 1.0, 1.0, 5.0, 4.9];
        let run = |p: &GenParams| {
            let mut s = Sampler::new(p);
            (0..50)
                .map(|_| s.sample(&mut logits.clone(), &[]))
                .collect::<Vec<_>>()
        };
        let a = run(&p);
        assert_eq!(a, run(&p));
        assert!(a.iter().all(|&t| t == 3 || t == 4));
        assert!(a.contains(&3) && a.contains(&4));
    }
}
