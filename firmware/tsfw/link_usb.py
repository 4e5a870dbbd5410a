"""USB serial link: frames out on stdout, frames in from stdin, never blocking.

On a device: ``sys.stdout.buffer.write`` and ``select.poll`` on ``sys.stdin`` (Ctrl-C handling
is switched off while the link is open so a 0x03 byte in a frame is just data). Under the
WebAssembly bench and virtual nodes: the runner's ``hostio.read_byte()`` (non-blocking) for
input; output still goes through ``sys.stdout.buffer.write(buf, 0, n)``, which (unlike
``hostio.write``) allocates nothing.

``mpremote`` still works on a running node: its Ctrl-C (``\r\x03``, which can never start a
valid frame) stops the firmware with KeyboardInterrupt and gives the REPL back.

Incoming bytes are gathered into a preallocated buffer up to the frame delimiter (0x00, the
end of every COBS frame); ``poll()`` returns the length of a complete frame (delimiter not
included) or 0::

    link = UsbLink()
    n = link.poll()
    if n:
        handle(link.rx, n)      # link.rx[0:n]
    link.write(frame_buf, frame_len)
"""

import sys

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

DELIM = const(0)
RX_MAX = const(512)
_READ_BUDGET = const(64)
_CTRL_C = const(3)  # bytes per poll(): commands are short, sampling must not starve


class UsbLink:
    """Non-blocking byte link over the USB serial port (see module docstring)."""

    name = "usb"

    def __init__(self, rx_max=RX_MAX):
        self.rx = bytearray(rx_max)
        self._n = 0
        self._overflow = False
        self.rx_overflows = 0   # frames too long for rx (dropped)
        self.tx_errors = 0
        self.eof = False
        self._out = sys.stdout.buffer
        self._one = bytearray(1)
        self._poll = None
        self._read_byte = None
        try:
            import hostio  # WebAssembly runner
            self._read_byte = hostio.read_byte
        except ImportError:
            import select
            self._poll = select.poll()
            self._poll.register(sys.stdin, select.POLLIN)
            self._stdin = getattr(sys.stdin, "buffer", sys.stdin)
        try:
            import micropython
            micropython.kbd_intr(-1)  # binary protocol: 0x03 is data, not Ctrl-C
        except (ImportError, AttributeError):
            pass

    def close(self):
        """Give the port back to the REPL (Ctrl-C works again)."""
        try:
            import micropython
            micropython.kbd_intr(3)
        except (ImportError, AttributeError):
            pass

    def write(self, buf, n):
        """Send ``buf[0:n]`` (allocation-free); False if the port refused it."""
        try:
            self._out.write(buf, 0, n)
            return True
        except OSError:
            self.tx_errors += 1
            return False

    def flush(self):
        try:
            self._out.flush()
        except (OSError, AttributeError):
            pass

    def _next_byte(self):
        rb = self._read_byte
        if rb is not None:
            b = rb()
            if b == -2:
                self.eof = True
                return -1
            return b
        for _ in self._poll.ipoll(0):
            if self._stdin.readinto(self._one) == 1:
                return self._one[0]
        return -1

    def poll(self):
        """Read what is waiting; the length of a complete frame now in ``rx``, else 0."""
        rx = self.rx
        for _ in range(_READ_BUDGET):
            b = self._next_byte()
            if b < 0:
                return 0
            if b == DELIM:
                n = self._n
                self._n = 0
                if self._overflow:
                    self._overflow = False
                    self.rx_overflows += 1
                    continue
                if n:
                    return n
                continue
            if b == _CTRL_C and self._n == 1:
                # A frame's second byte is the protocol version (0x1_), never 0x03: this is
                # mpremote's "\r\x03" (or a double Ctrl-C) asking for the REPL. Give it back.
                self._n = 0
                self.close()
                raise KeyboardInterrupt
            if self._n < len(rx):
                rx[self._n] = b
                self._n += 1
            else:
                self._overflow = True
        return 0
