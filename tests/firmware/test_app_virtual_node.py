"""Virtual nodes (trackside.virtual.node): the real firmware behind a pseudo-terminal, read with
pyserial like hardware; the gateway variant multiplexes its nodes onto one port."""

from __future__ import annotations

import time

import pytest
import serial

from trackside.virtual.node import start_virtual_gateway, start_virtual_node
from tsproto import consts as C
from tsproto.decoder import StreamDecoder
from tsproto.frame import FrameWriter
from tsproto.messages import Command

pytestmark = pytest.mark.wasm


def read_until(ser, dec, done, timeout=60.0):
    msgs = []
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        msgs += dec.feed(ser.read(4096))
        if done(msgs):
            break
    return msgs


def test_virtual_node_on_a_pty_answers_commands():
    from trackside.sim.athlete import SimulatedAthlete

    jog = SimulatedAthlete().simulate(3.0, 200.0)
    with start_virtual_node(6, "left_forearm", motion=jog.imu("left_forearm"), realtime=False) as node:
        assert node.port.startswith("/dev/")
        with serial.Serial(node.port, 921600, timeout=0.2) as ser:
            dec = StreamDecoder()
            msgs = read_until(ser, dec, lambda ms: sum(x.type == C.T_SAMPLES for x in ms) >= 10)
            assert sum(x.type == C.T_SAMPLES for x in msgs) >= 10, node.stderr()
            w = FrameWriter(C.NODE_HOST)
            w.node_id = 6
            ser.write(w.frame(C.T_COMMAND, 0, Command(cmd=C.CMD_HELLO, args=()).body()))
            msgs = read_until(ser, dec, lambda ms: any(x.type == C.T_ACK for x in ms))  # after the hello
        hello = next(x for x in msgs if x.type == C.T_HELLO)
        assert hello.node_id == 6 and hello.chip == "MPU-9250" and hello.rate_hz == 200
        assert any(x.type == C.T_ACK and x.cmd == C.CMD_HELLO for x in msgs)
        assert dec.stats()["crc_errors"] == 0
        assert node.alive()


def test_virtual_gateway_multiplexes_its_nodes():
    with start_virtual_gateway([(1, "thigh_l", None), (2, "shank_l", None)], realtime=False) as gw:
        with serial.Serial(gw.port, 921600, timeout=0.2) as ser:
            dec = StreamDecoder()
            msgs = read_until(ser, dec, lambda ms: {x.node_id for x in ms if x.type == C.T_SAMPLES} == {1, 2})
        assert {x.node_id for x in msgs if x.type == C.T_SAMPLES} == {1, 2}, gw.stderr()
        assert dec.stats()["crc_errors"] == 0


def test_bad_arguments_are_refused_before_starting():
    with pytest.raises(ValueError, match="node_id"):
        start_virtual_node(0, "thigh_l")
    with pytest.raises(ValueError, match="chip"):
        start_virtual_node(3, "thigh_l", chip="bmi270")
    with pytest.raises(ValueError, match="segment"):
        start_virtual_node(3, "Thigh L")
    with pytest.raises(ValueError, match="unique"):
        start_virtual_gateway([(1, "a", None), (1, "b", None)])
