"""IMU drivers (register level, over ``machine.I2C``) and chip detection by WHO_AM_I.

Supported: MPU-9250 / MPU-9255 / MPU-6500 (+AK8963), ICM-20948 (+AK09916), LSM303AGR and
LSM303DLHC (accelerometer + magnetometer, no gyro). All drivers share one API (see ``base.ImuDriver``)::

    from tsfw import drivers
    imu = drivers.detect(i2c, rate_hz=200)   # None when no sensor answers: see drivers.last_error
    out = array('h', bytes(2 * 9 * 32)); ts = array('i', bytes(4 * 32))
    n = imu.fifo_read(out, 32, ts)            # 9 int16 per sample in the chip's accel/gyro frame

``detect`` never raises for a missing or failing sensor: it returns None and leaves the reason
in ``drivers.last_error`` (for hello/status and the LED error code).
"""

from tsfw.drivers.base import ImuDriver  # noqa: F401 (re-exported)

# (address, WHO_AM_I register, expected ids, name): the order in which detect() probes
_PROBES = (
    (0x68, 0x75, (0x70, 0x71, 0x73), "mpu9250"),
    (0x69, 0x75, (0x70, 0x71, 0x73), "mpu9250"),
    (0x68, 0x00, (0xEA,), "icm20948"),
    (0x69, 0x00, (0xEA,), "icm20948"),
    (0x19, 0x0F, (0x33,), "lsm303agr"),
    (0x1E, 0x0A, (0x48,), "lsm303dlhc"),  # no accel WHO_AM_I: the magnetometer's IRA_REG_M 'H'
)

last_error = ""
unknown = []  # (address, WHO_AM_I) that answered but are not supported, from the last probe


def probe(i2c, retries=2):
    """WHO_AM_I of the known chips: list of (name, address). Bus errors are retried, not raised.

    Devices that answer with an unsupported WHO_AM_I (e.g. an MPU-6050: 0x68) are listed in
    ``drivers.unknown`` so the reason can be reported.
    """
    found = []
    del unknown[:]
    seen = {}
    buf = bytearray(1)
    for addr, reg, ids, name in _PROBES:
        if any(a == addr for _, a in found):
            continue  # already identified (do not poke an MPU's registers as an ICM's)
        if name == "lsm303dlhc" and any(n == "lsm303agr" for n, _ in found):
            continue  # the LSM303AGR's magnetometer sits at 0x1E too
        for _ in range(retries + 1):
            try:
                if name == "icm20948":
                    # make sure bank 0 is selected (a soft reset of the ESP32 leaves the bank)
                    i2c.writeto_mem(addr, 0x7F, b"\x00")
                i2c.readfrom_mem_into(addr, reg, buf)
            except OSError as e:
                if e.args and e.args[0] == 19:  # ENODEV: nobody at this address, no retry
                    break
                continue
            if buf[0] in ids:
                found.append((name, 0x19 if name == "lsm303dlhc" else addr))  # driver: accel address
                seen.pop(addr, None)
            elif reg == 0x75 or addr not in seen:
                seen[addr] = buf[0]
            break
    for addr in seen:
        if not any(a == addr for _, a in found):
            unknown.append((addr, seen[addr]))
    return found


def driver_class(name):
    """The driver class for a chip name from ``probe``."""
    if name == "mpu9250":
        from tsfw.drivers.mpu9250 import MPU9250
        return MPU9250
    if name == "icm20948":
        from tsfw.drivers.icm20948 import ICM20948
        return ICM20948
    if name == "lsm303agr":
        from tsfw.drivers.lsm303agr import LSM303AGR
        return LSM303AGR
    if name == "lsm303dlhc":
        from tsfw.drivers.lsm303dlhc import LSM303DLHC
        return LSM303DLHC
    raise ValueError("unknown chip " + name)


def detect(i2c, rate_hz=200, acc_range_g=8, gyro_range_dps=2000, retries=2):
    """The first supported IMU found, configured, or None (reason in ``last_error``).

    Bad arguments (rate, ranges) raise ValueError before the bus is touched; a chip that
    answers WHO_AM_I but fails to initialise is skipped with its error recorded.
    """
    global last_error
    if not 10 <= rate_hz <= 1000:
        raise ValueError("rate_hz must be 10..1000, not %r" % (rate_hz,))
    if acc_range_g not in (2, 4, 8, 16):
        raise ValueError("acc_range_g must be 2, 4, 8 or 16, not %r" % (acc_range_g,))
    if gyro_range_dps not in (250, 500, 1000, 2000):
        raise ValueError("gyro_range_dps must be 250, 500, 1000 or 2000, not %r" % (gyro_range_dps,))
    errors = []
    for name, addr in probe(i2c, retries):
        try:
            drv = driver_class(name)(i2c, addr, rate_hz=rate_hz, acc_range_g=acc_range_g,
                                     gyro_range_dps=gyro_range_dps, retries=retries)
        except OSError as e:
            errors.append("%s@0x%02x: %s" % (name, addr, e))
            continue
        last_error = ""
        return drv
    for addr, who in unknown:
        errors.append("unsupported chip at 0x%02x (WHO_AM_I 0x%02x)" % (addr, who))
    last_error = "; ".join(errors) if errors else "no IMU found (tried 0x68, 0x69, 0x19, 0x1E)"
    return None
