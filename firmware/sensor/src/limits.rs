//! Fixed limits of the node's fault detection: what [`crate::node`] applies and
//! [`crate::registers`] documents in the register map. Both depend on this module and on
//! nothing of each other's here (`node` uses the register map, never the other way round).

/// Windows with an identical code before a sensor is flagged frozen.
pub const FROZEN_WINDOWS: u16 = 20;
