//! Request planner: coalesces a device's fields into the fewest Modbus read requests.
//!
//! Pure (no I/O). Fields of one function (coils, discrete inputs, holding or input registers)
//! are sorted by address and merged greedily while the request stays within the size cap
//! (≤ 125 registers / ≤ 2000 coils, or the device's lower cap) and the hole between two fields is
//! at most `max_gap` items. For fields that do not overlap, the feasibility of a run is monotone
//! (dropping its first field keeps it feasible), so the greedy plan is optimal among plans that
//! read each field once; [`optimal_request_count`] computes the optimum by dynamic programming,
//! independently, and the property tests check that they agree (and that greedy is never better
//! than the optimum when fields overlap, e.g. bits of a status register).
//!
//! When a device refuses a coalesced read with "illegal data address" (a hole it does not
//! implement), [`split`] cuts the request in two at its largest hole; the poller keeps the split
//! plan for the rest of its life.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Largest register count of one read (Modbus spec, functions 3 and 4).
pub const MAX_REGISTERS_PER_REQUEST: u16 = 125;
/// Largest coil / discrete-input count of one read (Modbus spec, functions 1 and 2).
pub const MAX_COILS_PER_REQUEST: u16 = 2000;

/// Which Modbus table a field lives in (and so which read function is used).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    /// Coils, read with function 0x01.
    #[serde(alias = "coils")]
    Coil,
    /// Discrete inputs, read with function 0x02.
    #[serde(alias = "discrete_inputs")]
    DiscreteInput,
    /// Holding registers, read with function 0x03.
    #[serde(alias = "holding_register", alias = "holding_registers")]
    Holding,
    /// Input registers, read with function 0x04.
    #[serde(alias = "input_register", alias = "input_registers")]
    Input,
}

impl Function {
    /// True for coils and discrete inputs (one bit per address).
    pub fn is_bit(self) -> bool {
        matches!(self, Function::Coil | Function::DiscreteInput)
    }
    /// Modbus function code.
    pub fn code(self) -> u8 {
        match self {
            Function::Coil => 1,
            Function::DiscreteInput => 2,
            Function::Holding => 3,
            Function::Input => 4,
        }
    }
    /// Config name (`coil`, `discrete_input`, `holding`, `input`).
    pub fn as_str(self) -> &'static str {
        match self {
            Function::Coil => "coil",
            Function::DiscreteInput => "discrete_input",
            Function::Holding => "holding",
            Function::Input => "input",
        }
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the planner needs to know about one field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanField {
    /// Table.
    pub function: Function,
    /// First address.
    pub address: u16,
    /// Items occupied: registers for register tables, 1 for coils/discrete inputs.
    pub width: u16,
}

impl PlanField {
    /// One past the last address (as u32: a field may end at 65536).
    pub fn end(&self) -> u32 {
        u32::from(self.address) + u32::from(self.width)
    }
}

/// Limits of coalescing for one device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanLimits {
    /// Largest unused hole (registers) bridged inside one read; coils use 16 × this.
    pub max_gap_registers: u16,
    /// Register cap per read (1..=125).
    pub max_registers: u16,
    /// Coil cap per read (1..=2000).
    pub max_coils: u16,
}

impl Default for PlanLimits {
    fn default() -> Self {
        Self {
            max_gap_registers: 4,
            max_registers: MAX_REGISTERS_PER_REQUEST,
            max_coils: MAX_COILS_PER_REQUEST,
        }
    }
}

impl PlanLimits {
    fn cap(&self, f: Function) -> u32 {
        if f.is_bit() {
            u32::from(self.max_coils.clamp(1, MAX_COILS_PER_REQUEST))
        } else {
            u32::from(self.max_registers.clamp(1, MAX_REGISTERS_PER_REQUEST))
        }
    }
    fn gap(&self, f: Function) -> u32 {
        if f.is_bit() {
            u32::from(self.max_gap_registers) * 16
        } else {
            u32::from(self.max_gap_registers)
        }
    }
}

/// One planned read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRequest {
    /// Table to read.
    pub function: Function,
    /// First address.
    pub address: u16,
    /// Registers or coils to read.
    pub count: u16,
    /// Indices (into the device's field list) of the fields this read delivers, by address.
    pub fields: Vec<usize>,
}

impl ReadRequest {
    fn from_fields(fields: &[PlanField], idx: Vec<usize>) -> Option<Self> {
        let first = *idx.first()?;
        let function = fields[first].function;
        let start = idx.iter().map(|&i| fields[i].address).min()?;
        let end = idx.iter().map(|&i| fields[i].end()).max()?;
        Some(Self {
            function,
            address: start,
            count: u16::try_from(end - u32::from(start)).ok()?,
            fields: idx,
        })
    }
}

/// Field indices of one function, sorted by (address, end).
fn sorted_groups(fields: &[PlanField]) -> Vec<Vec<usize>> {
    let mut idx: Vec<usize> = (0..fields.len()).collect();
    idx.sort_by_key(|&i| (fields[i].function, fields[i].address, fields[i].end(), i));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for i in idx {
        match groups.last_mut() {
            Some(g) if fields[g[0]].function == fields[i].function => g.push(i),
            _ => groups.push(vec![i]),
        }
    }
    groups
}

/// Items covered from the first start to the last end of a sorted run.
fn span(fields: &[PlanField], run: &[usize]) -> u32 {
    let start = run.first().map_or(0, |&i| u32::from(fields[i].address));
    let end = run.iter().map(|&i| fields[i].end()).max().unwrap_or(start);
    end - start
}

/// Can the sorted run of fields go into one read?
fn feasible(fields: &[PlanField], run: &[usize], limits: &PlanLimits) -> bool {
    let Some(&first) = run.first() else {
        return true;
    };
    let f = fields[first].function;
    let start = u32::from(fields[first].address);
    let mut end = fields[first].end();
    for &i in &run[1..] {
        let a = u32::from(fields[i].address);
        if a > end && a - end > limits.gap(f) {
            return false;
        }
        end = end.max(fields[i].end());
    }
    end - start <= limits.cap(f)
}

/// Plans the reads for `fields` (greedy, optimal; see the module doc).
///
/// A field wider than the cap gets a read of its own (config validation rejects that case).
pub fn plan(fields: &[PlanField], limits: &PlanLimits) -> Vec<ReadRequest> {
    let mut out = Vec::new();
    for group in sorted_groups(fields) {
        let mut start = 0;
        while start < group.len() {
            let mut end = start + 1;
            while end < group.len() && feasible(fields, &group[start..=end], limits) {
                end += 1;
            }
            if let Some(r) = ReadRequest::from_fields(fields, group[start..end].to_vec()) {
                out.push(r);
            }
            start = end;
        }
    }
    out
}

/// The fewest reads any plan needs for `fields` under `limits`, computed by dynamic programming
/// (independent of [`plan`]; used to check it and to report the optimum in benchmarks).
pub fn optimal_request_count(fields: &[PlanField], limits: &PlanLimits) -> usize {
    sorted_groups(fields)
        .iter()
        .map(|g| {
            // best[j] = fewest reads for the first j fields of the group.
            let mut best = vec![usize::MAX; g.len() + 1];
            best[0] = 0;
            for j in 1..=g.len() {
                // A single field always costs one read (even an over-wide one).
                best[j] = best[j - 1].saturating_add(1);
                for i in (0..j - 1).rev() {
                    if span(fields, &g[i..j]) > limits.cap(fields[g[i]].function) {
                        break; // the span only grows as the run extends to the left
                    }
                    if feasible(fields, &g[i..j], limits) {
                        best[j] = best[j].min(best[i].saturating_add(1));
                    }
                }
            }
            best[g.len()]
        })
        .sum()
}

/// Splits a read in two at its largest hole between fields (ties: nearest the middle).
/// `None` when the read carries a single field (or fields that all start at one address).
pub fn split(req: &ReadRequest, fields: &[PlanField]) -> Option<(ReadRequest, ReadRequest)> {
    let idx = &req.fields;
    if idx.len() < 2 {
        return None;
    }
    let mid = idx.len() / 2;
    let mut best: Option<(i64, usize, usize)> = None; // (gap, -distance to mid, cut)
    let mut end = fields[idx[0]].end();
    for cut in 1..idx.len() {
        let a = u32::from(fields[idx[cut]].address);
        if a <= u32::from(fields[idx[cut - 1]].address) {
            end = end.max(fields[idx[cut]].end());
            continue; // same start address: cannot cut here
        }
        let gap = i64::from(a) - i64::from(end);
        let dist = cut.abs_diff(mid);
        let better = match best {
            None => true,
            Some((g, d, _)) => gap > g || (gap == g && dist < d),
        };
        if better {
            best = Some((gap, dist, cut));
        }
        end = end.max(fields[idx[cut]].end());
    }
    let (_, _, cut) = best?;
    Some((
        ReadRequest::from_fields(fields, idx[..cut].to_vec())?,
        ReadRequest::from_fields(fields, idx[cut..].to_vec())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(address: u16, width: u16) -> PlanField {
        PlanField {
            function: Function::Holding,
            address,
            width,
        }
    }

    #[test]
    fn contiguous_fields_make_one_read() {
        let f: Vec<_> = (0..50).map(|i| h(100 + i, 1)).collect();
        let p = plan(&f, &PlanLimits::default());
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].address, p[0].count, p[0].fields.len()), (100, 50, 50));
    }

    #[test]
    fn cap_splits_long_maps() {
        // 100 f32 = 200 registers: 125 cap -> 62 fields (124 regs) + 38 fields.
        let f: Vec<_> = (0..100).map(|i| h(i * 2, 2)).collect();
        let p = plan(&f, &PlanLimits::default());
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].count, 124);
        assert_eq!(p[1].count, 76);
        let lower = PlanLimits {
            max_registers: 20,
            ..PlanLimits::default()
        };
        assert_eq!(plan(&f, &lower).len(), 10);
    }

    #[test]
    fn gaps_and_functions() {
        let f = vec![
            h(0, 2),
            h(6, 1),  // hole of 4: bridged with the default gap of 4
            h(20, 1), // hole of 13: new read
            PlanField {
                function: Function::Input,
                address: 0,
                width: 1,
            },
            PlanField {
                function: Function::Coil,
                address: 0,
                width: 1,
            },
            PlanField {
                function: Function::Coil,
                address: 64,
                width: 1,
            },
            PlanField {
                function: Function::Coil,
                address: 200,
                width: 1,
            },
        ];
        let p = plan(&f, &PlanLimits::default());
        let summary: Vec<_> = p.iter().map(|r| (r.function, r.address, r.count)).collect();
        assert_eq!(
            summary,
            vec![
                (Function::Coil, 0, 65),
                (Function::Coil, 200, 1),
                (Function::Holding, 0, 7),
                (Function::Holding, 20, 1),
                (Function::Input, 0, 1),
            ]
        );
        let no_gap = PlanLimits {
            max_gap_registers: 0,
            ..PlanLimits::default()
        };
        assert_eq!(plan(&f[..3], &no_gap).len(), 3);
    }

    #[test]
    fn overlapping_fields_share_a_read() {
        // Bits of one status register and the register itself.
        let f = vec![h(10, 1), h(10, 1), h(10, 1), h(11, 2)];
        let p = plan(&f, &PlanLimits::default());
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].address, p[0].count), (10, 3));
    }

    #[test]
    fn field_ending_at_top_of_address_space() {
        let f = vec![h(65532, 4)];
        let p = plan(&f, &PlanLimits::default());
        assert_eq!((p[0].address, p[0].count), (65532, 4));
    }

    #[test]
    fn split_cuts_at_largest_hole() {
        let f = vec![h(0, 1), h(1, 1), h(4, 1), h(5, 1), h(6, 1)];
        let p = plan(&f, &PlanLimits::default());
        assert_eq!(p.len(), 1);
        let (a, b) = split(&p[0], &f).unwrap();
        assert_eq!((a.address, a.count, b.address, b.count), (0, 2, 4, 3));
        // No hole: cut in the middle; single field: no split.
        let g: Vec<_> = (0..4).map(|i| h(i, 1)).collect();
        let (a, b) = split(&plan(&g, &PlanLimits::default())[0], &g).unwrap();
        assert_eq!((a.fields.len(), b.fields.len()), (2, 2));
        let (one, _) = split(&a, &g).unwrap();
        assert!(split(&one, &g).is_none());
        // Fields that all start at one address cannot be split.
        let same = vec![h(3, 1), h(3, 1)];
        assert!(split(&plan(&same, &PlanLimits::default())[0], &same).is_none());
    }

    fn field() -> impl Strategy<Value = PlanField> {
        (
            prop::sample::select(vec![Function::Holding, Function::Input, Function::Coil]),
            0u16..400,
            prop::sample::select(vec![1u16, 2, 4]),
        )
            .prop_map(|(function, address, width)| PlanField {
                function,
                address,
                width: if function.is_bit() { 1 } else { width },
            })
    }

    /// Fields laid out without overlaps: each starts after the previous one ends, plus a hole.
    fn disjoint_fields() -> impl Strategy<Value = Vec<PlanField>> {
        prop::collection::vec((field(), 0u16..12), 1..80).prop_map(|v| {
            let mut next = [0u16; 4];
            v.into_iter()
                .map(|(mut f, hole)| {
                    let slot = &mut next[usize::from(f.function.code() - 1)];
                    f.address = *slot + hole;
                    *slot = f.address + f.width;
                    f
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn greedy_equals_optimum_without_overlaps(
            fields in disjoint_fields(),
            gap in 0u16..10,
            cap in 4u16..126,
        ) {
            let limits = PlanLimits { max_gap_registers: gap, max_registers: cap, max_coils: cap * 8 };
            prop_assert_eq!(plan(&fields, &limits).len(), optimal_request_count(&fields, &limits));
        }

        #[test]
        fn plan_covers_every_field_once(
            fields in prop::collection::vec(field(), 1..60),
            gap in 0u16..10,
            cap in 4u16..126,
        ) {
            let limits = PlanLimits { max_gap_registers: gap, max_registers: cap, max_coils: cap * 8 };
            let p = plan(&fields, &limits);
            prop_assert!(p.len() >= optimal_request_count(&fields, &limits));
            let mut seen = vec![0usize; fields.len()];
            for r in &p {
                prop_assert!(u32::from(r.count) <= limits.cap(r.function));
                for &i in &r.fields {
                    seen[i] += 1;
                    let f = fields[i];
                    prop_assert_eq!(f.function, r.function);
                    prop_assert!(f.address >= r.address);
                    prop_assert!(f.end() <= u32::from(r.address) + u32::from(r.count));
                }
                if let Some((a, b)) = split(r, &fields) {
                    prop_assert_eq!(a.fields.len() + b.fields.len(), r.fields.len());
                    prop_assert!(a.count <= r.count && b.count <= r.count);
                }
            }
            prop_assert!(seen.iter().all(|&n| n == 1), "every field read exactly once");
        }
    }
}
