"""A simulated beemon station for `demo`: real-looking files written the way a station writes them.

Audio is a valid 16-bit PCM WAV (written in place, then closed), video an H.264 Annex-B stream
(written under a dot-name, then `os.replace`d in, as an atomic save), and the temperature sensor
appends a CSV line every second and finishes the day with `<name>.csv.final`.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import random
import struct
import threading
import wave
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


def wav_bytes(seconds: float = 1.0, rate: int = 16_000, tone_hz: float = 440.0) -> bytes:
    """A mono 16-bit PCM WAV of a sine tone, headers and all."""
    frames = int(seconds * rate)
    samples = (int(8000 * math.sin(2 * math.pi * tone_hz * i / rate)) for i in range(frames))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return buffer.getvalue()


def h264_bytes(size: int, rng: random.Random) -> bytes:
    """An Annex-B H.264 byte stream: SPS, PPS, then IDR slices of noise (a player sees the NAL units)."""
    sps = b"\x00\x00\x00\x01\x67\x42\xc0\x1e\xda\x02\x80\xbf\xe5\xc0\x44\x00\x00\x03\x00\x04\x00\x00\x03\x00\xf0"
    pps = b"\x00\x00\x00\x01\x68\xce\x3c\x80"
    body = bytearray(sps + pps)
    while len(body) < size:
        body += b"\x00\x00\x00\x01\x65" + rng.randbytes(min(32_768, size - len(body)))
    return bytes(body[:size])


@dataclass
class StationSimulator:
    """Writes into `outbox` as `station` until `stop()`; `written` maps every finished file to its SHA-256."""

    outbox: Path
    station: str = "rpi4-demo"
    audio_every: float = 3.0
    video_every: float = 5.0
    video_size: int = 256 * 1024
    seed: int = 7
    written: dict[Path, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _path(self, sensor: str, when: datetime, suffix: str, with_time: bool = True) -> Path:
        day = when.strftime("%Y-%m-%d")
        stamp = f"{self.station}@{day}" + (when.strftime("@%H-%M-%S") if with_time else "")
        folder = self.outbox / sensor / day
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{stamp}{suffix}"

    def start(self) -> StationSimulator:
        self.outbox.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="station-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[Path, str]:
        """Stop writing, finish the day's CSV with its `.csv.final`; returns every file written and its digest."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        return dict(self.written)

    def _finished(self, path: Path, content: bytes) -> None:
        self.written[path] = hashlib.sha256(content).hexdigest()

    def _run(self) -> None:
        rng = random.Random(self.seed)
        start = datetime.now()
        csv_path = self._path("temp", start, ".csv", with_time=False)
        if not csv_path.exists():
            csv_path.write_text("timestamp,temperature_c,humidity_pct\n", encoding="utf-8")
        next_audio = next_video = 0.0
        while True:
            now = datetime.now()
            elapsed = (now - start).total_seconds()
            if elapsed >= next_audio:
                path = self._path("audio", now, ".wav")
                content = wav_bytes(seconds=1.0, tone_hz=200 + rng.random() * 300)
                with path.open("wb") as audio:  # written in place, then closed: inotify's Closed
                    audio.write(content)
                self._finished(path, content)
                next_audio += self.audio_every
            if elapsed >= next_video:
                path = self._path("video", now, ".h264")
                temporary = path.with_name(f".{path.name}.tmp")
                content = h264_bytes(self.video_size, rng)
                temporary.write_bytes(content)
                os.replace(temporary, path)  # an atomic save: inotify's Moved
                self._finished(path, content)
                next_video += self.video_every
            line = f"{now.isoformat(timespec='seconds')},{20 + 5 * rng.random():.2f},{50 + 20 * rng.random():.1f}\n"
            with csv_path.open("a", encoding="utf-8") as csv:
                csv.write(line)
            if self._stop.wait(1.0):
                break
        final = csv_path.with_name(csv_path.name + ".final")
        temporary = final.with_name(f".{final.name}.tmp")
        content = csv_path.read_bytes()
        temporary.write_bytes(content)
        os.replace(temporary, final)
        self._finished(final, content)
