"""The NSCA wire format: packet layout, CRC32, XOR, and cutting text on UTF-8 boundaries."""

from __future__ import annotations

import struct
import zlib

import pytest

from accre_monitor.outputs import nsca_packet as wire

LAYOUT = {4096: struct.Struct("!hxxIIh64s128s4096sxx"), 512: struct.Struct("!hxxIIh64s128s512sxx")}


def decode(packet: bytes, size: int = 4096) -> tuple:
    return LAYOUT[size].unpack(packet)


@pytest.mark.parametrize("size, length", [(4096, 4304), (512, 720)])
def test_packets_are_as_long_as_the_daemon_reads_them(size, length):
    packet = wire.data_packet(1, 0, b"h", b"s", b"o", size)
    assert len(packet) == wire.packet_size(size) == length


def test_a_packet_carries_version_3_and_its_fields_nul_padded():
    packet = wire.data_packet(1_800_000_000, 2, b"web01", b"disk", b"CRITICAL - full", 4096)
    version, _crc, timestamp, code, host, service, output = decode(packet)
    assert (version, timestamp, code) == (3, 1_800_000_000, 2)
    assert host == b"web01".ljust(64, b"\0")
    assert service == b"disk".ljust(128, b"\0")
    assert output == b"CRITICAL - full".ljust(4096, b"\0")


def test_the_crc_is_computed_with_the_crc_field_zeroed():
    packet = wire.data_packet(1_800_000_000, 1, b"h", b"s", "é\nx".encode(), 512)
    crc = decode(packet, 512)[1]
    zeroed = packet[:4] + b"\0\0\0\0" + packet[8:]
    assert crc == zlib.crc32(zeroed)
    assert crc != zlib.crc32(packet)


def test_fields_that_leave_no_room_for_the_nul_are_refused():
    with pytest.raises(ValueError):
        wire.data_packet(1, 0, b"h" * 64, b"s", b"o", 4096)
    with pytest.raises(ValueError):
        wire.data_packet(1, 0, b"h", b"s", b"o" * 512, 512)
    assert wire.data_packet(1, 0, b"h" * 63, b"s" * 127, b"o" * 511, 512)


def test_the_init_packet_gives_the_iv_and_the_daemons_clock():
    iv = bytes(range(128))
    assert wire.parse_init(iv + struct.pack("!I", 1_800_000_123)) == (iv, 1_800_000_123)
    with pytest.raises(ValueError):
        wire.parse_init(iv)


def test_xor_mixes_in_the_iv_and_the_password_byte_by_byte():
    iv = bytes((7 * i + 3) % 256 for i in range(128))
    password = b"s3cret!"
    packet = wire.data_packet(1_800_000_000, 1, b"web01", b"disk", b"x" * 300, 512)
    encrypted = wire.Cipher(wire.XOR, iv, password).encrypt(packet)
    expected = bytes(
        byte ^ iv[i % 128] ^ password[i % len(password)] for i, byte in enumerate(packet)
    )
    assert encrypted == expected
    assert wire.Cipher(wire.XOR, iv, password).encrypt(encrypted) == packet


def test_method_none_sends_the_packet_as_it_is():
    packet = wire.data_packet(1, 0, b"h", b"s", b"o", 512)
    assert wire.Cipher(wire.NONE, b"\1" * 128, b"pw").encrypt(packet) == packet


def test_an_unsupported_method_is_refused():
    with pytest.raises(ValueError, match="method 3"):
        wire.Cipher(3, b"\0" * 128, b"pw")


@pytest.mark.parametrize("char", ["é", "€", "😀"])
def test_cutting_never_splits_a_multibyte_character(char):
    data = ("a" + char * 400).encode()
    for limit in range(1, 40):
        cut = wire.cut_utf8(data, limit)
        assert len(cut) <= limit
        assert limit - len(cut) < len(char.encode())  # as long as it can be
        cut.decode("utf-8")  # raises on a split character


def test_text_that_fits_is_not_cut():
    assert wire.cut_utf8("héllo".encode(), 6) == "héllo".encode()
