# Wire protocol constants (docs/protocol.md is the specification).
# Plain ints (no const()) so that `from tsproto.consts import X` works on MicroPython too.

VERSION_MAJOR = 1
VERSION_MINOR = 0
VERSION = (VERSION_MAJOR << 4) | VERSION_MINOR  # first payload byte

# Payload layout: ver u8, type u8, node u8, seq u16 LE, t_us u32 LE, body..., crc32 u32 LE
HEADER_LEN = 9
CRC_LEN = 4
MIN_PAYLOAD = HEADER_LEN + CRC_LEN
# CRC-32/ISO-HDLC (zlib.crc32 / binascii.crc32) over a virtual 0x00 byte followed by the payload
# without its CRC; equal to zlib.crc32(payload, CRC_INIT). The leading zero lets the firmware CRC
# its frame buffer in place (byte 0 is the COBS code byte, zeroed for the CRC).
CRC_INIT = 0xD202EF8D

# Largest payload (header + body + crc). COBS then adds 1 byte and the delimiter 1 byte:
# 248 + 2 = 250 = one ESP-NOW message. Payloads <= 253 need exactly one COBS code byte.
MAX_PAYLOAD = 248
MAX_FRAME = MAX_PAYLOAD + 2
ESPNOW_MAX = 250

NODE_BROADCAST = 0xFF  # node id in host->node frames addressed to every node
NODE_HOST = 0xFE  # reserved: never a sensor node id

# Message types
T_HELLO = 0x01
T_STATUS = 0x02
T_TIMESYNC_REQ = 0x03
T_TIMESYNC_REPLY = 0x04
T_COMMAND = 0x05
T_ACK = 0x06
T_NACK = 0x07
T_LOG = 0x08
T_SAMPLES = 0x10

# Sample batch flags
F_RAW = 0x01  # raw-only: no quaternion (9 values per sample)
F_GAP = 0x02  # samples were lost right before this batch (FIFO overflow, dropped frame)

# Sensor mode (hello.mode, command CMD_SET_MODE)
MODE_RAW = 0
MODE_FUSED = 1

# Commands (host -> node), body: cmd u8 + arguments
CMD_START = 0x01
CMD_STOP = 0x02
CMD_SET_RATE = 0x03  # rate_hz u16
CMD_SET_RANGES = 0x04  # accel_g u8, gyro_dps u16
CMD_SET_MODE = 0x05  # mode u8 (MODE_RAW / MODE_FUSED)
CMD_CALIB_GYRO = 0x06  # duration_ms u16
CMD_STORE_MAG_CAL = 0x07  # calib_id u32, bias 3 x i16 (counts), soft-iron 9 x i16 (Q14, row-major)
CMD_IDENTIFY = 0x08  # seconds u8 (blink)
CMD_REBOOT = 0x09
CMD_HELLO = 0x0A  # ask for a hello message
CMD_STATUS = 0x0B  # ask for a status message

# Argument layouts of each command (struct format after the cmd byte)
CMD_ARGS = {
    CMD_START: "",
    CMD_STOP: "",
    CMD_SET_RATE: "<H",
    CMD_SET_RANGES: "<BH",
    CMD_SET_MODE: "<B",
    CMD_CALIB_GYRO: "<H",
    CMD_STORE_MAG_CAL: "<I3h9h",
    CMD_IDENTIFY: "<B",
    CMD_REBOOT: "",
    CMD_HELLO: "",
    CMD_STATUS: "",
}

# NACK error codes
E_UNKNOWN_CMD = 1
E_BAD_ARG = 2
E_BUSY = 3
E_UNSUPPORTED = 4
E_FAILED = 5
E_BAD_STATE = 6

# Log levels
LOG_DEBUG = 10
LOG_INFO = 20
LOG_WARN = 30
LOG_ERROR = 40

# Sample layout: ax ay az gx gy gz mx my mz qw qx qy qz (int16; quaternion Q14, 16384 = 1.0)
SAMPLE_LEN = 13
RAW_LEN = 9
Q14 = 16384
