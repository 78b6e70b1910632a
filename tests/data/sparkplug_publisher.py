#!/usr/bin/env python3
"""Sparkplug B edge node for the end-to-end test `tests/tests/mqtt_dialects.rs`.

The payloads are built by an implementation independent of Millwright: the PyPI package
`mqtt-spb-wrapper` (2.1.2; its Tahu-generated protobuf classes and Cirrus Link's payload
helpers), sent with paho-mqtt (its dependency). The wrapper's entity classes cannot send
alias-only DATA, engineering-unit properties or a sequence gap, so the session is driven at the
lowest level the wrapper offers: `getNodeBirthPayload`, `getDeviceBirthPayload`,
`getDdataPayload`, `addMetric`, `getSeqNum`, `getNodeDeathPayload`.

Session (all metric timestamps are --t0 plus a few ms; QoS 1, in order):
  NBIRTH (seq 0) -> DBIRTH (1) -> DDATA x2 by alias only (2, 3; the second with an unknown
  alias and a value of the wrong type) -> a truncated protobuf -> NDATA by alias (4)
  -> one sequence number skipped -> DDATA (6, a gap) -> DDATA (7) -> DDEATH (8) -> NDEATH.
The test keeps the expected readings; change both together.
"""
import argparse
import sys

import paho.mqtt.client as mqtt
from mqtt_spb_wrapper.spb_protobuf import (
    MetricDataType as T,
    addMetric,
    getDdataPayload,
    getDeviceBirthPayload,
    getNodeBirthPayload,
    getNodeDeathPayload,
    getSeqNum,
)
from mqtt_spb_wrapper.spb_protobuf import Payload
from mqtt_spb_wrapper.spb_protobuf.sparkplug_b import addNullMetric


def with_unit(metric, unit):
    metric.properties.keys.append("engUnit")
    v = metric.properties.values.add()
    v.type = T.String
    v.string_value = unit
    return metric


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--device", required=True)
    ap.add_argument("--t0", type=int, required=True, help="base timestamp, ms since the epoch")
    a = ap.parse_args()
    ns = "spBv1.0/%s" % a.group
    t0 = a.t0

    death = getNodeDeathPayload()  # bdSeq of this session, also the last will
    bd = death.metrics[0].long_value
    c = mqtt.Client(client_id="spb-pub-%s" % a.node, clean_session=True)
    c.will_set("%s/NDEATH/%s" % (ns, a.node), bytes(death.SerializeToString()), qos=1)
    c.connect(a.host, a.port)
    c.loop_start()
    sent = 0

    def pub(kind, payload, device=None):
        nonlocal sent
        topic = "%s/%s/%s" % (ns, kind, a.node) + ("/%s" % device if device else "")
        info = c.publish(topic, bytes(payload.SerializeToString()), qos=1)
        info.wait_for_publish(10)
        if not info.is_published():
            sys.exit("publish to %s not acknowledged" % topic)
        sent += 1

    # NBIRTH, seq 0. The library numbers the birth's bdSeq apart from the will's: use the will's.
    b = getNodeBirthPayload()
    b.metrics[0].long_value = bd
    b.timestamp = t0
    addMetric(b, "Node Control/Rebirth", None, T.Boolean, False, t0)
    with_unit(addMetric(b, "Uptime", 1, T.Int64, 3600, t0), "s")
    with_unit(addMetric(b, "Supply Voltage", 2, T.Float, 24.25, t0), "V")
    pub("NBIRTH", b)

    # DBIRTH, seq 1.
    t = t0 + 1
    d = getDeviceBirthPayload()
    d.timestamp = t
    with_unit(addMetric(d, "Temperature", 10, T.Double, 61.25, t), "°C")
    with_unit(addMetric(d, "Speed", 11, T.UInt16, 1480, t), "rpm")
    addMetric(d, "Running", 12, T.Boolean, True, t)
    with_unit(addMetric(d, "Suction Pressure", 13, T.Int16, -120, t), "mbar")
    addMetric(d, "Serial", 14, T.String, "SN-0042", t)
    with_unit(addMetric(d, "Bearing/Vibration", 15, T.Float, 2.5, t), "mm/s")
    addMetric(d, "Starts", 16, T.UInt64, 123456, t)
    addMetric(d, "Offset", 17, T.Int32, -7, t)
    addNullMetric(d, "Spare", 18, T.Double)
    pub("DBIRTH", d, a.device)

    # DDATA by alias only, seq 2 and 3.
    for k in range(2):
        t = t0 + 10 + 10 * k
        p = getDdataPayload()
        p.timestamp = t
        addMetric(p, None, 10, T.Double, 62.5 + k, t)
        addMetric(p, None, 11, T.UInt16, 1490 + k, t)
        addMetric(p, None, 12, T.Boolean, k == 0, t)
        addMetric(p, None, 13, T.Int16, -130 - k, t)
        addMetric(p, None, 15, T.Float, 2.75 + k, t)
        if k == 1:
            # Bad parts the node must skip and count: an alias no birth declared, and a
            # String where the birth said UInt16.
            addMetric(p, None, 99, T.Double, 1.0, t)
            addMetric(p, None, 11, T.String, "fast", t)
        pub("DDATA", p, a.device)

    # A truncated protobuf (no sequence number used): rejected, and blocks nothing after it.
    bad = Payload()
    addMetric(bad, None, 10, T.Double, 99.0, t0 + 25)
    raw = bytes(bad.SerializeToString())[:-3]
    info = c.publish("%s/DDATA/%s/%s" % (ns, a.node, a.device), raw, qos=1)
    info.wait_for_publish(10)

    # NDATA by alias, seq 4.
    t = t0 + 30
    p = getDdataPayload()
    p.timestamp = t
    addMetric(p, None, 2, T.Float, 23.75, t)
    addMetric(p, None, 1, T.Int64, 3700, t)
    pub("NDATA", p)

    # Sequence number 5 is never sent: a gap.
    getSeqNum()
    for k, v in enumerate([70.5, 71.5]):
        t = t0 + 40 + 10 * k
        p = getDdataPayload()
        p.timestamp = t
        addMetric(p, None, 10, T.Double, v, t)
        pub("DDATA", p, a.device)

    # DDEATH (seq 8), then the node's death, published as a graceful disconnect does.
    p = getDdataPayload()
    p.timestamp = t0 + 60
    pub("DDEATH", p, a.device)
    pub("NDEATH", death)
    c.loop_stop()
    c.disconnect()
    print("published %d messages" % sent)


if __name__ == "__main__":
    main()
