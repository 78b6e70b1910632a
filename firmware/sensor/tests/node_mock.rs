//! Runs `SensorNode` over scripted buses (embedded-hal-mock): every transaction of two windows
//! is listed, including a failing ADC channel and a temperature sensor that stops answering.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I2cT};
use embedded_hal_mock::eh1::spi::{Mock as SpiMock, Transaction as SpiT};
use millwright_drivers::ads1115::{single_shot_config, Ads1115, Gain, Mux, Rate};
use millwright_drivers::adxl345::Adxl345;
use millwright_drivers::tmp117::Tmp117;
use millwright_sensor::current_loop::LoopRange;
use millwright_sensor::node::{SensorNode, SensorNodeConfig, WriteError};
use millwright_sensor::registers::{holding, input, loop_status, status, WordOrder};

const N: usize = 8;
const TMP: u8 = 0x49;
const ADC: u8 = 0x48;

fn spi_reg_write(t: &mut Vec<SpiT<u8>>, reg: u8, v: u8) {
    t.extend([
        SpiT::transaction_start(),
        SpiT::write_vec(vec![reg, v]),
        SpiT::transaction_end(),
    ]);
}

fn spi_read(t: &mut Vec<SpiT<u8>>, cmd: u8, data: Vec<u8>) {
    t.extend([
        SpiT::transaction_start(),
        SpiT::write_vec(vec![cmd]),
        SpiT::read_vec(data),
        SpiT::transaction_end(),
    ]);
}

fn accel_script(init: bool, samples: &[(i16, i16, i16)]) -> Vec<SpiT<u8>> {
    let mut t = Vec::new();
    if init {
        spi_read(&mut t, 0x80, vec![0xE5]);
        spi_reg_write(&mut t, 0x2D, 0x00);
        spi_reg_write(&mut t, 0x2C, 0x0E);
        spi_reg_write(&mut t, 0x31, 0x0B);
        spi_reg_write(&mut t, 0x38, 0x00);
        spi_reg_write(&mut t, 0x2D, 0x08);
    }
    for &(x, y, z) in samples {
        spi_read(&mut t, 0xB0, vec![0x80]);
        let mut d = Vec::new();
        for v in [x, y, z] {
            d.extend(v.to_le_bytes());
        }
        spi_read(&mut t, 0xF2, d);
    }
    t
}

fn tmp_init() -> Vec<I2cT> {
    vec![
        I2cT::write_read(TMP, vec![0x0F], vec![0x11, 0x17]),
        I2cT::write_read(TMP, vec![0x01], vec![0x02, 0x20]),
        I2cT::write(TMP, vec![0x01, 0x02, 0x24]),
        I2cT::write_read(TMP, vec![0x01], vec![0x22, 0x24]),
    ]
}

fn adc_channel(c: u8, raw: Option<i16>) -> Vec<I2cT> {
    let w = single_shot_config(Mux::single(c).unwrap(), Gain::Fsr4_096, Rate::Sps860);
    let [h, l] = w.to_be_bytes();
    match raw {
        Some(r) => vec![
            I2cT::write(ADC, vec![0x01, h, l]),
            I2cT::write_read(ADC, vec![0x01], vec![h, l]),
            I2cT::write_read(ADC, vec![0x00], r.to_be_bytes().to_vec()),
        ],
        None => vec![I2cT::write(ADC, vec![0x01, h, l])
            .with_error(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address))],
    }
}

fn f32_at(regs: &[u16], addr: u16) -> f32 {
    let a = usize::from(addr);
    f32::from_bits(WordOrder::Abcd.join([regs[a], regs[a + 1]]))
}

#[test]
fn two_windows_with_faults() {
    let w1: Vec<(i16, i16, i16)> = (0..N)
        .map(|k| {
            if k % 2 == 0 {
                (100, 50, 256)
            } else {
                (-100, -50, 256)
            }
        })
        .collect();
    let w2: Vec<(i16, i16, i16)> = (0..N)
        .map(|k| {
            if k % 2 == 0 {
                (200, 50, 250)
            } else {
                (-200, -50, 262)
            }
        })
        .collect();
    let mut spi_t = accel_script(true, &w1);
    spi_t.extend(accel_script(false, &w2));

    let mut tmp_t = tmp_init();
    tmp_t.push(I2cT::write_read(TMP, vec![0x00], vec![0x0C, 0x80])); // 25 °C
    tmp_t.push(
        I2cT::write_read(TMP, vec![0x00], vec![0, 0])
            .with_error(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address)),
    );

    let mut adc_t = Vec::new();
    // Window 1: 12 mA, 3.5 mA (NE43 failure), no answer, 20.8 mA (over-range).
    adc_t.extend(adc_channel(0, Some(9600)));
    adc_t.extend(adc_channel(1, Some(2800)));
    adc_t.extend(adc_channel(2, None));
    adc_t.extend(adc_channel(3, Some(16640)));
    // Window 2: all channels 4 mA.
    for c in 0..4 {
        adc_t.extend(adc_channel(c, Some(3200)));
    }

    let spi = SpiMock::new(&spi_t);
    let tmp_bus = I2cMock::new(&tmp_t);
    let adc_bus = I2cMock::new(&adc_t);
    let cfg = SensorNodeConfig {
        loops: [
            LoopRange { lo: 0.0, hi: 16.0 },
            LoopRange { lo: 0.0, hi: 250.0 },
            LoopRange { lo: -1.0, hi: 5.0 },
            LoopRange { lo: 0.0, hi: 100.0 },
        ],
        ..SensorNodeConfig::default()
    };
    let mut node: SensorNode<_, _, _, N> = SensorNode::new(
        Adxl345::new_spi(spi),
        Tmp117::new(tmp_bus, TMP),
        Ads1115::new(adc_bus, ADC),
        cfg,
    );

    node.run_window(7);
    let r = *node.input_registers();
    let st = r[usize::from(input::STATUS)];
    assert_ne!(st & status::DATA_VALID, 0);
    assert_ne!(st & status::ACCEL_FLAT, 0, "z axis is constant");
    assert_ne!(st & status::ADC_FAULT, 0);
    assert_ne!(st & status::LOOP_FAULT, 0);
    assert_eq!(st & status::TEMP_FAULT, 0);
    assert_eq!(r[usize::from(input::HEARTBEAT)], 1);
    assert_eq!(WordOrder::Cdab.join([r[4], r[5]]), 7);
    assert_eq!(r[usize::from(input::TEMPERATURE)] as i16, 2500);
    assert_eq!(WordOrder::Abcd.join([r[28], r[29]]) as i32, 25_000);
    // x alternates ±100 codes: acceleration RMS = 100 × 38 246 µm/s² = 3.82 m/s²
    assert_eq!(r[usize::from(input::ACC_RMS)], 382);
    assert_eq!(r[usize::from(input::CREST_FACTOR)], 100);
    assert_eq!(f32_at(&r, input::LOOP_VALUE[0]), 8.0);
    assert_eq!(r[usize::from(input::LOOP_CURRENT[0])], 12_000);
    assert!(f32_at(&r, input::LOOP_VALUE[1]).is_nan());
    assert!(f32_at(&r, input::LOOP_VALUE[2]).is_nan());
    assert_eq!(r[usize::from(input::LOOP_CURRENT[2])], 0xFFFF);
    assert!((f32_at(&r, input::LOOP_VALUE[3]) - 105.0).abs() < 1e-3);
    let ls = r[usize::from(input::LOOP_STATUS)];
    assert_eq!(ls & loop_status::shift(0xF, 0), 0);
    assert_eq!(
        ls & loop_status::shift(0xF, 1),
        loop_status::shift(loop_status::UNDER_RANGE | loop_status::FAILURE, 1)
    );
    assert_eq!(
        ls & loop_status::shift(0xF, 2),
        loop_status::shift(loop_status::FAILURE, 2)
    );
    assert_eq!(
        ls & loop_status::shift(0xF, 3),
        loop_status::shift(loop_status::OVER_RANGE, 3)
    );

    node.run_window(8);
    let r2 = *node.input_registers();
    let st2 = r2[usize::from(input::STATUS)];
    assert_ne!(st2 & status::TEMP_FAULT, 0);
    assert_eq!(st2 & status::ADC_FAULT, 0);
    assert_eq!(r2[usize::from(input::TEMPERATURE)], 0x8000);
    assert_eq!(r2[usize::from(input::ACC_RMS)], 765, "x doubled");
    assert_eq!(WordOrder::Abcd.join([r2[2], r2[3]]), 2);
    assert_eq!(f32_at(&r2, input::LOOP_VALUE[2]), -1.0);

    let (a, t, d) = node.destroy();
    a.destroy().done();
    t.destroy().done();
    d.destroy().done();
}

#[test]
fn wrong_accelerometer_id_marks_fault_and_holding_writes_are_validated() {
    let mut spi_t = Vec::new();
    spi_read(&mut spi_t, 0x80, vec![0x00]); // not an ADXL345
    let mut tmp_t = tmp_init();
    tmp_t.push(I2cT::write_read(TMP, vec![0x00], vec![0x80, 0x00])); // no conversion yet
    let mut adc_t = Vec::new();
    for c in 0..4 {
        adc_t.extend(adc_channel(c, Some(6400)));
    }
    let mut node: SensorNode<_, _, _, N> = SensorNode::new(
        Adxl345::new_spi(SpiMock::new(&spi_t)),
        Tmp117::new(I2cMock::new(&tmp_t), TMP),
        Ads1115::new(I2cMock::new(&adc_t), ADC),
        SensorNodeConfig::default(),
    );
    // Holding writes: a whole NaN is refused, a whole empty range is refused, a good one lands.
    let nan = WordOrder::Abcd.split(f32::NAN.to_bits());
    assert_eq!(
        node.write_holding(holding::LOOP_LO[0], &nan),
        Err(WriteError::IllegalValue(holding::LOOP_LO[0]))
    );
    let one = WordOrder::Abcd.split(1.0f32.to_bits());
    assert!(node
        .write_holding(holding::LOOP_LO[1], &[one[0], one[1], one[0], one[1]])
        .is_err());
    let ten = WordOrder::Abcd.split(10.0f32.to_bits());
    node.write_holding(holding::LOOP_LO[1], &[one[0], one[1], ten[0], ten[1]])
        .unwrap();
    assert_eq!(
        node.write_holding(17, &[1, 2]),
        Err(WriteError::IllegalAddress(17))
    );
    assert_eq!(node.config().loops[1], LoopRange { lo: 1.0, hi: 10.0 });

    node.run_window(1);
    let r = *node.input_registers();
    let st = r[usize::from(input::STATUS)];
    assert_ne!(st & status::ACCEL_FAULT, 0);
    assert_ne!(
        st & status::TEMP_FAULT,
        0,
        "power-on marker is not a temperature"
    );
    assert_eq!(st & status::DATA_VALID, 0);
    assert_eq!(r[usize::from(input::VEL_RMS_OVERALL)], 0xFFFF);
    // 8 mA on channel 1 with range 1..10: 1 + 0.25 × 9 = 3.25
    assert!((f32_at(&r, input::LOOP_VALUE[1]) - 3.25).abs() < 1e-5);
    let (a, t, d) = node.destroy();
    a.destroy().done();
    t.destroy().done();
    d.destroy().done();
}
