//! Proof that the sensor-node crates build without `std`: this `#![no_std]` static library
//! defines the panic handler itself, which fails to link if `std` is anywhere in the graph.
#![no_std]

use millwright_sensor::features;

/// Exported so the feature code is monomorphised and kept.
#[no_mangle]
pub extern "C" fn millwright_vel_rms_um_s(ptr: *const i16, len: usize, fs_hz: u32) -> u32 {
    if ptr.is_null() {
        return 0;
    }
    // SAFETY: the caller passes a valid buffer of `len` samples.
    let s = unsafe { core::slice::from_raw_parts(ptr, len) };
    features::axis_features(s, fs_hz, 38_246).map_or(0, |f| f.vel_rms_um_s)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
