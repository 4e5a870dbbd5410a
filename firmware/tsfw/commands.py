"""Host commands served by a node between FIFO drains: dispatch, argument checks, ack/nack.

``handle(app, msg)`` runs one decoded ``tsproto`` Command and answers it: an Ack, or a Nack with
an error code (``tsproto.consts.E_*``): E_UNKNOWN_CMD for codes this firmware does not know,
E_BAD_ARG for values outside what the node/config accepts (the message names the reason in a
log frame), E_UNSUPPORTED when the sensor cannot do it (e.g. gyro calibration on a gyro-less
chip), E_BAD_STATE when the node cannot do it now (no sensor, calibration running), E_FAILED when
it was tried and did not work (e.g. the node moved during gyro calibration, flash write error).
Gyro calibration answers when it finishes (the ack/nack carries the command's sequence number).
"""

import tsproto.consts as C


class CommandError(Exception):
    """A command refused: ``code`` is the E_* error, the text goes to the host as a log line."""

    def __init__(self, code, text=""):
        super().__init__(text)
        self.code = code
        self.text = text


def _start(app, args):
    app.start()


def _stop(app, args):
    app.stop()


def _set_rate(app, args):
    app.set_value("rate_hz", args[0])


def _set_ranges(app, args):
    app.set_ranges(args[0], args[1])


def _set_mode(app, args):
    mode = args[0]
    if mode == C.MODE_RAW:
        app.set_value("mode", "raw")
    elif mode == C.MODE_FUSED:
        app.set_value("mode", "fused")
    else:
        raise CommandError(C.E_BAD_ARG, "mode must be 0 (raw) or 1 (fused), got %d" % mode)


def _calib_gyro(app, args):
    app.start_gyro_calibration(args[0])
    return True  # answered when the calibration ends


def _store_mag(app, args):
    calib_id = args[0]
    bias = list(args[1:4])
    soft = list(args[4:13])
    app.store_mag_calibration(calib_id, bias, soft)


def _identify(app, args):
    seconds = args[0] if args[0] else 5
    app.led.identify(seconds * 1000)


def _reboot(app, args):
    app.request_reboot()


def _hello(app, args):
    app.send_hello()


def _status(app, args):
    app.send_status()


HANDLERS = {
    C.CMD_START: _start,
    C.CMD_STOP: _stop,
    C.CMD_SET_RATE: _set_rate,
    C.CMD_SET_RANGES: _set_ranges,
    C.CMD_SET_MODE: _set_mode,
    C.CMD_CALIB_GYRO: _calib_gyro,
    C.CMD_STORE_MAG_CAL: _store_mag,
    C.CMD_IDENTIFY: _identify,
    C.CMD_REBOOT: _reboot,
    C.CMD_HELLO: _hello,
    C.CMD_STATUS: _status,
}


def handle(app, msg):
    """Run Command ``msg`` on ``app``; sends the ack/nack (unless the answer is deferred)."""
    fn = HANDLERS.get(msg.cmd)
    if fn is None or not isinstance(msg.args, tuple):
        app.send_nack(msg.seq, msg.cmd, C.E_UNKNOWN_CMD)
        app.log(C.LOG_WARN, "unknown command 0x%02x" % msg.cmd)
        return
    try:
        deferred = fn(app, msg.args)
    except CommandError as e:
        app.send_nack(msg.seq, msg.cmd, e.code)
        if e.text:
            app.log(C.LOG_WARN, e.text)
        return
    except ValueError as e:  # a config check refused the value
        app.send_nack(msg.seq, msg.cmd, C.E_BAD_ARG)
        app.log(C.LOG_WARN, str(e))
        return
    except OSError as e:  # sensor or flash I/O
        app.send_nack(msg.seq, msg.cmd, C.E_FAILED)
        app.log(C.LOG_ERROR, "command 0x%02x failed: %s" % (msg.cmd, e))
        return
    if deferred:
        app.pending_cmd(msg.seq, msg.cmd)
    else:
        app.send_ack(msg.seq, msg.cmd)
