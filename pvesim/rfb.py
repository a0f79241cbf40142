"""What pvesim serves behind `vncwebsocket`: an RFB 3.8 server for VMs and a line terminal for
containers and nodes, both speaking over one websocket (websockets' sync connection).

The RFB server offers only VNC authentication (DES of a 16-byte challenge keyed by the first 8
bytes of the password, which is the vncproxy ticket as in PVE), honours SetPixelFormat for
true-colour formats of 8, 16 or 32 bits, answers with Raw rectangles, and draws the guest's
name, state and the last keys typed with a built-in 5x7 font (`render`), so a test can compute
the exact picture a client should see. The terminal speaks PVE's termproxy framing: the first
message is `user:ticket\\n` (answered `OK`), then `0:<len>:<data>` (input), `1:<cols>:<rows>:`
(resize), `2` (ping).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

WIDTH, HEIGHT = 640, 240
SCALE, MARGIN, LINE = 3, 16, 30
PALETTE = [(16, 32, 64), (235, 235, 235), (80, 200, 120), (230, 90, 80)]  # bg, text, running, stopped
VERSION = b"RFB 003.008\n"

# 5x7 glyphs, one 5-bit row per entry (bit 4 = leftmost column).
_GLYPHS = {
    "A": "0E11111F111111", "B": "1E11111E11111E", "C": "0E111010101 10E", "D": "1C121111111 21C",
    "E": "1F10101E10101F", "F": "1F10101E101010", "G": "0E111017 11110F", "H": "1111111F111111",
    "I": "0E04040404040E", "J": "07020202021 20C", "K": "11121418141211", "L": "1010101010101F",
    "M": "111B1515111111", "N": "11111915131111", "O": "0E11111111110E", "P": "1E11111E101010",
    "Q": "0E111111151 20D", "R": "1E11111E141211", "S": "0F10100E01011E", "T": "1F040404040404",
    "U": "1111111111110E", "V": "1111111111 0A04", "W": "1111111515150A", "X": "11110A040A1111",
    "Y": "11110A04040404", "Z": "1F01020408101F", "0": "0E111315191 10E", "1": "040C040404040E",
    "2": "0E110102040 81F", "3": "1F020402011 10E", "4": "02060A121F0202", "5": "1F101E0101110E",
    "6": "0608101E11110E", "7": "1F010204080808", "8": "0E11110E11110E", "9": "0E11110F01020C",
    "-": "0000001F000000", ".": "00000000000C0C", ":": "000C0C000C0C00", "_": "0000000000001F",
    "/": "00010204081000", "(": "02040808080402", ")": "08040202020408", " ": "00000000000000",
    "?": "0E110102040004", "!": "04040404040004", "@": "0E111715171 00E", "#": "0A0A1F0A1F0A0A",
    "=": "00001F001F0000", ",": "0000000000 0408", "'": "04040800000000",
}
GLYPHS = {ch: [int(code.replace(" ", "")[i:i + 2], 16) for i in range(0, 14, 2)] for ch, code in _GLYPHS.items()}


def des_response(password: str | bytes, challenge: bytes) -> bytes:
    """VNC authentication: DES-ECB of the challenge with the password's first 8 bytes, each
    byte's bits reversed (RFB 3.8, 7.2.2)."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    raw = password.encode("latin-1") if isinstance(password, str) else password
    key = bytes(int(f"{b:08b}"[::-1], 2) for b in raw[:8].ljust(8, b"\0"))
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()  # K1=K2=K3: single DES
    return encryptor.update(challenge) + encryptor.finalize()


def screen_lines(*, kind: str, vmid: int, name: str, status: str, keys: str) -> list[tuple[str, int]]:
    """The text of the screen, with each line's palette colour."""
    return [
        (f"PVESIM {kind} {vmid}", 1),
        (name.upper(), 1),
        (f"STATUS: {status.upper()}", 2 if status == "running" else 3),
        (f"KEYS: {keys.upper()[-30:]}", 1),
    ]


def render(lines: list[tuple[str, int]], width: int = WIDTH, height: int = HEIGHT) -> bytearray:
    """The framebuffer as palette indices, one byte per pixel, row by row."""
    fb = bytearray(width * height)
    for row, (text, colour) in enumerate(lines):
        top = MARGIN + row * LINE
        for col, ch in enumerate(text):
            left = MARGIN + col * 6 * SCALE
            if left + 5 * SCALE > width:
                break
            glyph = GLYPHS.get(ch, GLYPHS["?"])
            for gy, bits in enumerate(glyph):
                for gx in range(5):
                    if bits & (0x10 >> gx):
                        for dy in range(SCALE):
                            y = top + gy * SCALE + dy
                            start = y * width + left + gx * SCALE
                            fb[start:start + SCALE] = bytes([colour]) * SCALE
    return fb


class Closed(Exception):
    """The peer went away."""


class Stream:
    """Exact-length reads over websocket messages (RFB does not align with message edges)."""

    def __init__(self, conn):
        self.conn = conn
        self.buf = bytearray()

    def read(self, n: int, timeout: float | None = None) -> bytes:
        from websockets.exceptions import ConnectionClosed

        while len(self.buf) < n:
            try:
                msg = self.conn.recv(timeout=timeout)
            except ConnectionClosed as exc:
                raise Closed() from exc
            self.buf += msg.encode() if isinstance(msg, str) else msg
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def send(self, data: bytes) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            self.conn.send(data)
        except ConnectionClosed as exc:
            raise Closed() from exc


class PixelFormat:
    def __init__(self, raw: bytes):
        (self.bpp, self.depth, self.big_endian, self.true_colour, self.rmax, self.gmax, self.bmax,
         self.rshift, self.gshift, self.bshift) = struct.unpack(">BBBBHHHBBB3x", raw)

    def pack(self, rgb: tuple[int, int, int]) -> bytes:
        r, g, b = rgb
        value = ((r * self.rmax // 255) << self.rshift | (g * self.gmax // 255) << self.gshift
                 | (b * self.bmax // 255) << self.bshift)
        return value.to_bytes(self.bpp // 8, "big" if self.big_endian else "little")


DEFAULT_FORMAT = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)


def serve_rfb(conn, *, password: str, screen: Callable[[str], list[tuple[str, int]]], desktop: str,
              alive: Callable[[], bool]) -> int:
    """Run one RFB 3.8 session on websocket `conn`; returns the bytes sent. `screen(keys)` gives
    the current lines; the picture is sent again when they change and the client asked for it."""
    from websockets.exceptions import ConnectionClosed

    io = Stream(conn)
    sent = 0

    def send(data: bytes) -> None:
        nonlocal sent
        io.send(data)
        sent += len(data)

    try:
        send(VERSION)
        version = io.read(12, timeout=30)
        if not version.startswith(b"RFB 003."):
            return sent
        send(b"\x01\x02")  # one security type: VNC authentication
        if io.read(1, timeout=30) != b"\x02":
            send(struct.pack(">I", 1) + _reason("security type not offered"))
            return sent
        challenge = os.urandom(16)
        send(challenge)
        if io.read(16, timeout=30) != des_response(password, challenge):
            send(struct.pack(">I", 1) + _reason("Authentication failed"))
            return sent
        send(struct.pack(">I", 0))
        io.read(1, timeout=30)  # ClientInit: shared flag (every session is shared here)
        fmt = PixelFormat(DEFAULT_FORMAT)
        name = desktop.encode()
        send(struct.pack(">HH", WIDTH, HEIGHT) + DEFAULT_FORMAT + struct.pack(">I", len(name)) + name)

        keys, held = "", set()
        shown: list | None = None
        cache: dict = {}
        wanted = False
        while alive():
            try:
                kind = io.read(1, timeout=0.25)[0]
            except TimeoutError:
                kind = None
            if kind == 0:
                fmt = PixelFormat(io.read(19)[3:])
                cache.clear()
                if not fmt.true_colour or fmt.bpp not in (8, 16, 32):
                    return sent  # colour maps are not served
            elif kind == 2:
                count = struct.unpack(">xH", io.read(3))[0]
                io.read(4 * count)
            elif kind == 3:
                incremental = io.read(9)[0]
                wanted = True
                if not incremental:
                    shown = None
            elif kind == 4:
                down, keysym = struct.unpack(">B2xI", io.read(7))
                keys = _key(keys, held, bool(down), keysym)
            elif kind == 5:
                io.read(5)
            elif kind == 6:
                length = struct.unpack(">3xI", io.read(7))[0]
                io.read(length & 0x7FFFFFFF)
            elif kind is not None:
                return sent  # unknown message: the stream cannot be followed any further
            lines = screen(keys)
            if wanted and lines != shown:
                send(_update(lines, fmt, cache))
                shown, wanted = lines, False
    except (Closed, ConnectionClosed):
        pass
    return sent


def _reason(text: str) -> bytes:
    return struct.pack(">I", len(text)) + text.encode()


def _key(keys: str, held: set, down: bool, keysym: int) -> str:
    if not down:
        held.discard(keysym)
        return keys
    held.add(keysym)
    if keysym == 0xFFFF and held & {0xFFE3, 0xFFE4} and held & {0xFFE9, 0xFFEA}:
        return "CTRL-ALT-DEL"
    if keysym == 0xFF0D:
        return ""
    if 0x20 <= keysym <= 0x7E:
        return (keys + chr(keysym))[-30:]
    return keys


def _update(lines, fmt: PixelFormat, cache: dict) -> bytes:
    """One FramebufferUpdate with the whole screen as a Raw rectangle."""
    pixels = cache.get(tuple(lines))
    if pixels is None:
        packed = [fmt.pack(rgb) for rgb in PALETTE]
        fb = render(lines)
        pixels = b"".join(packed[i] for i in fb)
        cache.clear()
        cache[tuple(lines)] = pixels
    return struct.pack(">xxHHHHHi", 1, 0, 0, WIDTH, HEIGHT, 0) + pixels


def serve_terminal(conn, *, user: str, ticket: str, prompt: str, hostname: str, alive: Callable[[], bool]) -> int:
    """A small line terminal in PVE's termproxy framing; returns the bytes sent."""
    from websockets.exceptions import ConnectionClosed

    sent = 0

    def send(text: str) -> None:
        nonlocal sent
        data = text.encode()
        conn.send(data)
        sent += len(data)

    try:
        first = conn.recv(timeout=30)
        first = first.decode() if isinstance(first, bytes) else first
        if first.rstrip("\n") != f"{user}:{ticket}":
            return sent
        send("OK")
        send(f"Linux {hostname} 6.17.2-1-pve (pvesim line terminal)\r\n{prompt}")
        line = ""
        while alive():
            try:
                msg = conn.recv(timeout=0.5)
            except TimeoutError:
                continue
            msg = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else msg
            out = []
            while msg:
                kind, _, rest = msg.partition(":")
                if kind != "0":
                    break  # resize (1:cols:rows:) and ping (2) need no answer
                length, _, rest = rest.partition(":")
                data, msg = rest[:int(length or 0)], rest[int(length or 0):]
                for ch in data:
                    if ch in "\r\n":
                        result = _run(line.strip(), hostname)
                        if result is None:
                            send("".join(out) + "\r\nlogout\r\n")
                            return sent
                        out += ["\r\n", result, prompt]
                        line = ""
                    elif ch in "\x7f\b":
                        if line:
                            line = line[:-1]
                            out.append("\b \b")
                    elif ch >= " ":
                        line += ch
                        out.append(ch)
            if out:
                send("".join(out))
    except ConnectionClosed:
        pass
    return sent


def _run(command: str, hostname: str) -> str | None:
    name, _, args = command.partition(" ")
    if name in ("exit", "logout"):
        return None
    if not name:
        return ""
    if name == "echo":
        return args + "\r\n"
    if name == "hostname":
        return hostname + "\r\n"
    if name == "uname":
        return "Linux\r\n"
    return f"-bash: {name}: command not found\r\n"
