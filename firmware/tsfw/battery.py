"""Battery voltage through the ADC and a resistor divider.

On the usual ESP32 boards the cell (3.0..4.2 V) sits behind a 1:2 divider on an ADC1 pin
(GPIO35 on many), read with 11 dB attenuation. ``read_mv()`` returns millivolts at the battery,
or 0 when no ADC is available (reported as "unknown", never an error)::

    bat = Battery(pin=35, divider=2.0)
    bat.read_mv()     # e.g. 3987
"""


class Battery:
    """Battery voltage monitor (``pin < 0`` or no ADC: always 0 = unknown)."""

    def __init__(self, pin=35, divider=2.0, samples=4):
        self._adc = None
        self._scale_milli = int(divider * 1000)  # integer math when reading
        self._samples = samples
        if pin is None or pin < 0:
            return
        try:
            import machine
            adc = machine.ADC(machine.Pin(pin))
            try:
                adc.atten(machine.ADC.ATTN_11DB)  # full range ~0..3.1 V at the pin
            except AttributeError:
                pass
            self._adc = adc
        except Exception:  # board without ADC (or simulated board without one)
            self._adc = None

    @property
    def available(self):
        return self._adc is not None

    def read_mv(self):
        """Battery millivolts (average of a few reads), 0 if unknown."""
        adc = self._adc
        if adc is None:
            return 0
        try:
            total = 0
            if hasattr(adc, "read_uv"):  # calibrated reading (ESP32 eFuse calibration)
                for _ in range(self._samples):
                    total += adc.read_uv() // 1000
            else:  # 16-bit raw against ~3.3 V full scale
                for _ in range(self._samples):
                    total += adc.read_u16() * 3300 // 65535
        except Exception:
            return 0
        pin_mv = total // self._samples
        return pin_mv * self._scale_milli // 1000
