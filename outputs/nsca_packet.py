"""The NSCA wire format (protocol version 3), with the standard library only.

A connection starts with the daemon's initialisation packet: a 128-byte IV (random per
connection) and the daemon's clock as a 4-byte big-endian time. The client then sends data
packets, laid out in network byte order as::

    int16 version (3), 2 bytes padding, uint32 CRC32, uint32 timestamp, int16 return code,
    char host[64], char service[128], char output[OUTPUT], 2 bytes padding

OUTPUT is 4096 bytes (NSCA 2.9 and later: 4304-byte packets) or 512 (NSCA 2.7: 720 bytes;
later daemons still accept it, recognising it by its length when the client closes the
connection right after it). Every text field ends with a NUL, so a field of N bytes holds
N - 1 bytes of text. The CRC32 is computed over the whole packet with the CRC field zeroed.

Encryption 1 ("XOR") XORs byte i of the packet with IV[i % 128] and with
password[i % len(password)]: obfuscation, not security. The daemon's other methods (2-26)
need libmcrypt on both sides and are not spoken here.
"""

from __future__ import annotations

import struct
import zlib

IV_SIZE = 128
INIT_SIZE = IV_SIZE + 4
VERSION = 3
HOST_SIZE = 64
SERVICE_SIZE = 128
OUTPUT_SIZES = (512, 4096)  # NSCA 2.7; NSCA 2.9 and later

NONE = 0
XOR = 1
METHODS = {NONE: "none", XOR: "XOR"}

_HEADER = struct.Struct("!hxxIIh")


def packet_size(max_output: int) -> int:
    """Bytes on the wire for one data packet with a plugin-output field of `max_output`."""
    return _HEADER.size + HOST_SIZE + SERVICE_SIZE + max_output + 2


def parse_init(init: bytes) -> tuple[bytes, int]:
    """(IV, the daemon's time in epoch seconds) from its 132-byte initialisation packet."""
    if len(init) != INIT_SIZE:
        raise ValueError(f"initialisation packet of {len(init)} bytes, not {INIT_SIZE}")
    return init[:IV_SIZE], struct.unpack("!I", init[IV_SIZE:])[0]


def data_packet(
    timestamp: int, code: int, host: bytes, service: bytes, output: bytes, max_output: int
) -> bytes:
    """One plain (unencrypted) data packet, its CRC32 filled in.

    The text fields must already fit (one byte short of their field, for the NUL)."""
    if len(host) >= HOST_SIZE or len(service) >= SERVICE_SIZE or len(output) >= max_output:
        raise ValueError("a field does not fit its packet field")
    body = (
        host.ljust(HOST_SIZE, b"\0")
        + service.ljust(SERVICE_SIZE, b"\0")
        + output.ljust(max_output, b"\0")
        + b"\0\0"
    )
    unsigned = _HEADER.pack(VERSION, 0, timestamp, code) + body
    return _HEADER.pack(VERSION, zlib.crc32(unsigned), timestamp, code) + body


class Cipher:
    """Encryption of one connection: `method` with the connection's IV and the password.

    XOR works on whole packets at once through Python integers (a byte loop would cost
    more than the rest of the packet's path); the key stream is built once per size."""

    def __init__(self, method: int, iv: bytes, password: bytes) -> None:
        if method not in METHODS:
            raise ValueError(f"unsupported NSCA encryption method {method}")
        self.method = method
        self.iv = iv
        self.password = password
        self._keys: dict[int, int] = {}

    def encrypt(self, packet: bytes) -> bytes:
        if self.method == NONE:
            return packet
        size = len(packet)
        key = self._keys.get(size)
        if key is None:
            key = self._keys[size] = _stream(self.iv, size) ^ _stream(self.password, size)
        return (int.from_bytes(packet, "big") ^ key).to_bytes(size, "big")


def _stream(pattern: bytes, size: int) -> int:
    """`pattern` repeated over `size` bytes, as an integer (0 for an empty pattern: the daemon
    XORs nothing for an empty password)."""
    if not pattern:
        return 0
    return int.from_bytes((pattern * (size // len(pattern) + 1))[:size], "big")


def cut_utf8(data: bytes, limit: int) -> bytes:
    """The longest prefix of UTF-8 `data` of at most `limit` bytes that ends on a character
    boundary (a multi-byte character is never split)."""
    if len(data) <= limit:
        return data
    end = limit
    while end > 0 and data[end] & 0xC0 == 0x80:  # a continuation byte: back to its lead byte
        end -= 1
    return data[:end]
