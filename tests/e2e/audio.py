"""Tones in WAV files, for phones that must be heard: make a tone file, say what a recording holds.

A phone plays ``tone_wav(path, hz)`` (16-bit mono 8 kHz PCM, what baresip's aufile source reads)
and records what it hears (baresip's sndfile filter writes each call's decoded audio to a file).
``hearing(recording, sent, tones)`` says, for each tone, for how many seconds and for what share
of the call the recording holds it.

Standard library only: the Goertzel algorithm (one DFT bin, a second-order filter) over blocks
of BLOCK samples.  BLOCK is 50 ms at 8 kHz, so the bins are 20 Hz apart: a tone on a multiple of
20 Hz (440, 1000) falls on a bin and leaks nothing into its neighbours.  A block holds a tone
when that bin carries most of the block's energy and the block is not near-silence; G.711's
quantisation noise is about 38 dB below a tone at the level we write, far under that line.
"""

import math
import struct
import wave

RATE = 8000
BLOCK = 400                 # samples: 50 ms, bins 20 Hz apart
AMPLITUDE = 8000            # of 32767: -12 dBFS, clear of clipping in G.711
SHARE_OF_BIN = 0.6          # a block holds a tone when its bin has >= 60 % of the energy ...
MIN_RMS = 300               # ... and the block is louder than this (silence is ~0)


class AudioFileError(AssertionError):
    """A recording is missing or not the 16-bit mono PCM this helper reads."""


def tone_wav(path, hz, seconds=30.0, rate=RATE, amplitude=AMPLITUDE):
    """Write ``seconds`` of a ``hz`` sine to ``path`` (16-bit mono PCM); returns the path."""
    if hz % (rate / BLOCK):
        raise ValueError(f"{hz} Hz is not on a {rate / BLOCK:g} Hz bin")
    n = int(seconds * rate)
    step = 2 * math.pi * hz / rate
    samples = struct.pack(f"<{n}h", *(round(amplitude * math.sin(step * i)) for i in range(n)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples)
    return path


def read_samples(path):
    """(rate, samples) of a 16-bit mono PCM WAV file."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2:
                raise AudioFileError(f"{path}: {w.getnchannels()} channels, "
                                     f"{8 * w.getsampwidth()} bits; want 16-bit mono")
            rate = w.getframerate()
            data = w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error) as e:
        raise AudioFileError(f"{path}: {e}") from e
    return rate, struct.unpack(f"<{len(data) // 2}h", data)


def goertzel_share(block, hz, rate):
    """The share (0..1) of ``block``'s energy in the DFT bin of ``hz``, and the block's RMS."""
    n = len(block)
    coeff = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    energy = 0.0
    for x in block:
        s1, s2 = x + coeff * s1 - s2, s1
        energy += x * x
    if energy == 0:
        return 0.0, 0.0
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2     # |X(k)|^2
    # a pure sine on the bin has |X|^2 = (N A / 2)^2 and energy N A^2 / 2: ratio N / 2
    return min(1.0, 2 * power / (n * energy)), math.sqrt(energy / n)


def tone_blocks(path, tones):
    """For each block of the file, the tone it holds (or None); and the block's seconds."""
    rate, samples = read_samples(path)
    size = BLOCK * rate // RATE
    found = []
    for start in range(0, len(samples) - size + 1, size):
        block = samples[start:start + size]
        held = None
        for hz in tones:
            share, rms = goertzel_share(block, hz, rate)
            if share >= SHARE_OF_BIN and rms >= MIN_RMS:
                held = hz
                break
        found.append(held)
    return found, size / rate


def seconds_of(path):
    rate, samples = read_samples(path)
    return len(samples) / rate


class Hearing:
    """What one recording holds: ``seconds[hz]`` of each tone over ``call`` seconds."""

    def __init__(self, recording, call_seconds, tones):
        blocks, block_seconds = tone_blocks(recording, tones)
        self.recording = recording
        self.call = call_seconds
        self.recorded = len(blocks) * block_seconds
        self.seconds = {hz: blocks.count(hz) * block_seconds for hz in tones}

    def share(self, hz):
        """The share of the call during which ``hz`` was heard (0 for a call of no length)."""
        return self.seconds[hz] / self.call if self.call > 0 else 0.0

    def __repr__(self):
        held = ", ".join(f"{hz} Hz {s:.2f} s ({self.share(hz):.0%})"
                         for hz, s in self.seconds.items())
        return (f"<{self.recording.name if hasattr(self.recording, 'name') else self.recording}"
                f": call {self.call:.2f} s, recorded {self.recorded:.2f} s; {held}>")


def hearing(recording, sent, tones):
    """What ``recording`` (the decoded audio a phone heard) holds, over the length of ``sent``
    (the audio the same phone sent in that call: its length is the call's length as the phone
    lived it, while a recording of received audio only grows when packets come)."""
    return Hearing(recording, seconds_of(sent), tones)
