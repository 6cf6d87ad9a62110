"""Separation of audio files of any length in bounded memory, block by block.

With the bases fixed (supervised separation) the activations of each STFT frame depend only on
that frame, so a file can be separated one *block of frames* at a time: read the samples the
block's frames cover (plus ``n_fft // 2`` of context on each side, zeros outside the file, exactly
like the centred STFT of the whole file), take their STFT, fit the activations, apply the Wiener
masks, invert every frame and overlap-add it into a running output buffer together with the
squared window. Samples that no later frame touches are final: they are normalised by the summed
squared window (as :func:`librosa.istft` does) and written. Memory therefore depends on the block
size, never on the file's length, and the result equals whole-file processing
(:func:`nmfsep.separation.separate`) frame for frame. The only difference is the grouping of
frames for the convergence test of :func:`nmfsep.nmf.fit_nmf` (frames are solved in cache-sized
groups, each stopped by ``tol`` on its own): with ``tol=0`` the outputs are identical up to float
rounding, with the default tolerance they differ far below audibility.

Parallelism: blocks are independent, so they are processed by ``n_threads`` threads, each
with one BLAS thread (matrix products on blocks this small scale badly over BLAS threads, and
multi-threaded OpenBLAS collapses when the machine is busy: measured in ``bench/scale.py``). The
numerical kernels release the GIL.

Semi-supervised separation (``free_components > 0``) is an *online approximation* on files
longer than one block: blocks are processed in order, the free bases of each block start from
those learned on the previous block (the first block starts from the same seeded random
initialisation as :func:`~nmfsep.separation.separate`), and each block runs the usual W+H
iterations (``max_iter``, ``tol``) with the model's bases fixed. The free bases thus follow the
non-modelled part of the mixture as it changes along the file; a file of one block gives exactly
the whole-file result. Blocks then run one after the other (each needs the previous one).

Outputs are written at the input's rate, channel count and length, each to a hidden temporary
file in its destination directory (the naming of :func:`nmfsep.audio.atomic_open`, so that
:func:`nmfsep.audio.cleanup_temp_files` removes what a killed run leaves) renamed at the end.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nmfsep.errors import AudioError, NmfsepError, ParameterError
from nmfsep.model import NMFModel
from nmfsep.spectral import STFTConfig

__all__ = [
    "MAX_BLOCK_SECONDS",
    "MIN_BLOCK_SECONDS",
    "StreamResult",
    "auto_block_frames",
    "separate_file",
]

#: Bytes of complex mixture STFT per block the automatic block size aims at. The peak working set
#: of a block is about 8x that (STFT, magnitude, masks, masked STFTs, inverse frames), and
#: ``n_threads + 1`` blocks are in flight.
BLOCK_STFT_BYTES = 24 * 1024 * 1024
#: Bounds of the automatic block duration (seconds).
MIN_BLOCK_SECONDS = 10.0
MAX_BLOCK_SECONDS = 60.0
_READ_FRAMES = 1 << 16


@dataclass
class StreamResult:
    """What :func:`separate_file` did.

    Attributes
    ----------
    outputs : dict of str to str
        Path written for each source.
    sr : int
        Sample rate of the input and of the outputs.
    n_samples : int
        Length of the input (and of each output) in samples.
    n_iter : int
        Most NMF iterations run by a block.
    converged : bool
        Whether every block stopped on its tolerance.
    settings : dict
        JSON-able settings (as :class:`~nmfsep.separation.SeparationResult`), plus ``streaming``.
    """

    outputs: dict[str, str]
    sr: int
    n_samples: int
    n_iter: int
    converged: bool
    settings: dict[str, Any]


def auto_block_frames(config: STFTConfig, sr: int, channels: int) -> int:
    """Frames per block: about :data:`BLOCK_STFT_BYTES` of complex STFT, 10 to 60 s of audio.

    A 44.1 kHz stereo file gets about 23 s blocks, 16 kHz mono 60 s.
    """
    per_frame = max(1, channels) * config.n_freq * 8
    frames = BLOCK_STFT_BYTES // per_frame
    lo = int(MIN_BLOCK_SECONDS * sr / config.hop_length)
    hi = int(MAX_BLOCK_SECONDS * sr / config.hop_length)
    return int(max(lo, min(hi, frames), 1))


def _block_frames(block_seconds: float | None, config: STFTConfig, sr: int, channels: int) -> int:
    if block_seconds is None:
        return auto_block_frames(config, sr, channels)
    try:
        seconds = float(block_seconds)
    except (TypeError, ValueError):
        raise ParameterError(
            f"block_seconds must be a positive number, got {block_seconds!r}"
        ) from None
    if not np.isfinite(seconds) or seconds <= 0:
        raise ParameterError(f"block_seconds must be a positive number, got {block_seconds!r}")
    # At least one hop of new frames per window of overlap, so blocks always move forward.
    min_frames = -(-config.n_fft // config.hop_length)
    return max(min_frames, round(seconds * sr / config.hop_length))


# --------------------------------------------------------------------------------------------
# reading


class _Reader:
    """Sequential random access to a sound file: ``get(start, stop)`` with zeros outside it.

    Starts must not decrease from call to call; only the samples from the last start on are
    kept. ``n`` is the file's length once its end has been read (``None`` before).
    """

    def __init__(self, f: Any, path: Path, *, mono: bool = False) -> None:
        self.f, self.path = f, path
        self.mono = mono
        self.channels = 1 if mono else int(f.channels)
        self.buf = np.zeros((self.channels, 0), np.float32)
        self.buf_start = 0  # file sample of buf[:, 0]
        self.n: int | None = None

    @property
    def buf_end(self) -> int:
        return self.buf_start + self.buf.shape[1]

    def _read_until(self, stop: int) -> None:
        import soundfile as sf

        from nmfsep.audio import _sf_detail

        chunks = [self.buf]
        end = self.buf_end
        while self.n is None and end < stop:
            want = max(_READ_FRAMES, stop - end)
            try:
                block = self.f.read(want, dtype="float32", always_2d=True)
            except (sf.SoundFileError, RuntimeError, ValueError, OverflowError) as exc:
                raise AudioError(
                    f"audio data is corrupt or truncated ({_sf_detail(exc)})", path=self.path
                ) from None
            got = block.shape[0]
            if got and not np.isfinite(block).all():
                raise AudioError("contains NaN or infinite samples", path=self.path)
            if got:
                if self.mono:
                    block = block.mean(axis=1, keepdims=True, dtype=np.float32)
                chunks.append(np.ascontiguousarray(block.T))
                end += got
            if got < want:
                self.n = end
        self.buf = np.concatenate(chunks, axis=1) if len(chunks) > 1 else self.buf

    def get(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` of the file, shape (channels, stop - start), zero-padded."""
        self._read_until(stop)
        lo = max(start, self.buf_start)
        if lo > self.buf_start:  # forget what no later block needs
            self.buf = self.buf[:, lo - self.buf_start :]
            self.buf_start = lo
        out = np.zeros((self.channels, stop - start), np.float32)
        a, b = max(start, self.buf_start), min(stop, self.buf_end)
        if b > a:
            out[:, a - start : b - start] = self.buf[:, a - self.buf_start : b - self.buf_start]
        return out


# --------------------------------------------------------------------------------------------
# transforms


#: Cosine-sum coefficients of the windows :class:`~nmfsep.spectral.STFTConfig` accepts.
_COSINE_WINDOWS = {"hann": (0.5, 0.5), "hamming": (0.54, 0.46), "blackman": (0.42, 0.5, 0.08)}


def _windows(config: STFTConfig) -> tuple[np.ndarray, np.ndarray]:
    """Analysis/synthesis window padded to ``n_fft`` (float32) and its square.

    The same periodic windows as ``scipy.signal.get_window(name, win_length, fftbins=True)``
    (what librosa uses), computed here so that a separation never imports scipy.signal/librosa
    (seconds of start-up per process).
    """
    assert config.win_length is not None
    M = config.win_length
    name = "hann" if config.window == "sqrt_hann" else config.window
    fac = np.linspace(-np.pi, np.pi, M + 1)[:M]
    win = sum(a * np.cos(k * fac) for k, a in enumerate(_COSINE_WINDOWS[name]))
    win = np.asarray(win, dtype=np.float64)
    if config.window == "sqrt_hann":
        win = np.sqrt(np.maximum(win, 0.0))
    full = np.zeros(config.n_fft)
    lpad = (config.n_fft - M) // 2
    full[lpad : lpad + M] = win
    return full.astype(np.float32), (full**2).astype(np.float32)


def _frames_stft(x: np.ndarray, config: STFTConfig, window: np.ndarray) -> np.ndarray:
    """STFT (channels, n_freq, n_frames) of samples ``x`` (channels, (n_frames-1)*hop + n_fft)
    whose frames start every ``hop`` samples (no padding: ``x`` already holds the context)."""
    import scipy.fft
    from numpy.lib.stride_tricks import sliding_window_view

    frames = sliding_window_view(x, config.n_fft, axis=-1)[:, :: config.hop_length]
    # frames: (channels, n_frames, n_fft); scipy's FFT is faster than numpy's on the
    # non-power-of-two sizes that rate conversion gives (2822 at 44.1 kHz)
    out = scipy.fft.rfft(frames * window, axis=-1)
    return np.ascontiguousarray(out.transpose(0, 2, 1), dtype=np.complex64)


def _overlap_add(frames: np.ndarray, hop: int) -> np.ndarray:
    """Overlap-add ``frames`` (..., n_fft, n_frames) at ``hop``: (..., (n_frames-1)*hop + n_fft)."""
    *lead, n_fft, n = frames.shape
    n_chunks = -(-n_fft // hop)
    acc = np.zeros((*lead, n + n_chunks, hop), dtype=frames.dtype)
    for k in range(n_chunks):
        t0, t1 = k * hop, min((k + 1) * hop, n_fft)
        acc[..., k : k + n, : t1 - t0] += np.swapaxes(frames[..., t0:t1, :], -1, -2)
    flat = acc.reshape(*lead, -1)
    return flat[..., : (n - 1) * hop + n_fft]


# --------------------------------------------------------------------------------------------
# separation of one block


@dataclass
class _Setup:
    config: STFTConfig
    W: np.ndarray  # (context * n_modelled, K_fixed) bases on the input's grid
    n_modelled: int
    context: int
    labels: np.ndarray  # source index of each column (fixed, then free)
    n_sources: int
    beta: float
    mask_power: float
    l1: float
    max_iter: int
    tol: float
    window: np.ndarray
    window_sq: np.ndarray


@dataclass
class _BlockOut:
    j0: int
    n_frames: int
    y: np.ndarray  # (n_sources, channels, L) overlap-added, not normalised
    wss: np.ndarray  # (L,) summed squared window of the block's frames
    n_iter: int
    converged: bool
    W_free: np.ndarray | None


def _process_block(
    s: _Setup, x: np.ndarray, j0: int, lead: int, n_frames: int, W_free: np.ndarray | None = None
) -> _BlockOut:
    """Separate frames ``[j0, j0 + n_frames)`` from samples ``x`` that also cover ``lead``
    frames before them and some after (the context that frame stacking needs)."""
    import scipy.fft

    from nmfsep.masks import apply_masks
    from nmfsep.separation import _safe_gain, magnitude, masks_from_magnitude

    config = s.config
    # Float files far from full scale: separate a scaled copy (masks do not depend on the
    # level) so that float32 spectra neither overflow nor vanish; scale the result back.
    gain = _safe_gain(x)
    if gain != 1.0:
        x = x * np.float32(gain)
    X = _frames_stft(x, config, s.window)
    W: np.ndarray = s.W
    fixed: np.ndarray | bool = True
    K_fixed = s.W.shape[1]
    if W_free is not None:
        W = np.concatenate([s.W, W_free], axis=1)
        fixed = np.arange(W.shape[1]) < K_fixed
    masks, result = masks_from_magnitude(
        magnitude(X)[: s.n_modelled],
        W,
        s.labels,
        s.n_sources,
        n_freq=config.n_freq,
        context=s.context,
        fixed_W=fixed,
        beta=s.beta,
        l1=s.l1,
        mask_power=s.mask_power,
        max_iter=s.max_iter,
        tol=s.tol,
    )
    masks = masks[:, :, lead : lead + n_frames]
    X = X[..., lead : lead + n_frames]
    L = (n_frames - 1) * config.hop_length + config.n_fft
    y = np.empty((s.n_sources, X.shape[0], L), np.float32)
    for i in range(s.n_sources):  # one source at a time bounds the temporaries
        Y = apply_masks(masks[i : i + 1], X)[0].transpose(0, 2, 1)  # (channels, frames, freq)
        frames = scipy.fft.irfft(Y, n=config.n_fft, axis=-1).astype(np.float32, copy=False)
        del Y
        frames = frames.transpose(0, 2, 1)
        frames *= s.window[:, None]
        y[i] = _overlap_add(frames, config.hop_length)
        del frames
    if gain != 1.0:
        big = float(np.finfo(np.float32).max)
        y = np.clip(y.astype(np.float64) / gain, -big, big).astype(np.float32)
    wss = _overlap_add(np.repeat(s.window_sq[:, None], n_frames, axis=1), config.hop_length)
    return _BlockOut(
        j0=j0,
        n_frames=n_frames,
        y=y,
        wss=wss,
        n_iter=int(result.n_iter),
        converged=bool(result.converged),
        W_free=None if W_free is None else np.ascontiguousarray(result.W[:, K_fixed:]),
    )


# --------------------------------------------------------------------------------------------
# writing


class _Writers:
    """One atomic, block-by-block sound-file writer per output (temp file renamed at the end)."""

    def __init__(
        self,
        stack: contextlib.ExitStack,
        outputs: Mapping[str, str],
        sr: int,
        channels: int,
        subtypes: Mapping[str, str | None],
    ) -> None:
        import soundfile as sf

        from nmfsep.audio import _FLOAT_SUBTYPES, _resolve_format, atomic_open, write_error

        self.files: list[Any] = []
        self.clip: list[bool] = []
        self.paths: list[Path] = []
        for name, path in outputs.items():
            dest = Path(path)
            fmt, subtype = _resolve_format(dest, None, subtypes.get(name))
            try:
                fh = stack.enter_context(atomic_open(dest))
            except OSError as exc:
                raise write_error(exc, dest, AudioError) from None
            try:
                out = sf.SoundFile(
                    fh, "w", samplerate=sr, channels=channels, format=fmt, subtype=subtype
                )
            except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as exc:
                from nmfsep.audio import _sf_detail

                raise AudioError(f"cannot write audio ({_sf_detail(exc)})", path=dest) from None
            # Closed (header finalised) before atomic_open flushes and renames: LIFO order.
            stack.callback(out.close)
            self.files.append(out)
            self.clip.append(subtype not in _FLOAT_SUBTYPES)
            self.paths.append(dest)

    def write(self, y: np.ndarray) -> None:
        """Append ``y`` (n_sources, channels, n) to the outputs."""
        import soundfile as sf

        from nmfsep.audio import _sf_detail, write_error

        for i, out in enumerate(self.files):
            block = np.ascontiguousarray(y[i].T)
            if self.clip[i]:
                np.clip(block, -1.0, 1.0, out=block)
            try:
                out.write(block)
            except OSError as exc:
                raise write_error(exc, self.paths[i], AudioError) from None
            except (sf.SoundFileError, RuntimeError, ValueError) as exc:
                raise AudioError(
                    f"cannot write audio ({_sf_detail(exc)})", path=self.paths[i]
                ) from None


# --------------------------------------------------------------------------------------------
# the pipeline


def separate_file(
    path: str | os.PathLike[str],
    outputs: Mapping[str, str | os.PathLike[str]],
    model: NMFModel,
    *,
    subtypes: Mapping[str, str | None] | None = None,
    mask_power: float | None = None,
    free_components: int = 0,
    beta: float | str | None = None,
    l1: float | None = None,
    mono: bool = False,
    max_iter: int | None = None,
    tol: float | None = None,
    random_state: int | None = 0,
    block_seconds: float | None = None,
    n_threads: int = 1,
    callback: Callable[[int, int], None] | None = None,
) -> StreamResult:
    """Separate an audio file with a model, streaming it block by block to the output files.

    Parameters
    ----------
    path : str or os.PathLike
        The mixture (any format libsndfile reads).
    outputs : mapping of str to path
        Output file of each source (``"residual"`` too when ``free_components > 0``); the
        format follows the extension.
    model : NMFModel
    subtypes : mapping of str to str, optional
        Sample format of each output (default: the format's default, 16-bit PCM for WAV/FLAC).
    mask_power, free_components, beta, l1, max_iter, tol, random_state
        As in :func:`nmfsep.separation.separate` (``None``: its defaults).
    mono : bool
        Down-mix the input to one channel (the mean) first: the outputs are mono.
    block_seconds : float, optional
        Audio per block (default: :func:`auto_block_frames`).
    n_threads : int
        Blocks processed in parallel (supervised only), each with one BLAS thread.
    callback : callable(blocks_done, frames_done), optional
        Progress, after each block is written.

    Returns
    -------
    StreamResult

    Raises
    ------
    AudioError
        Unreadable input (as :func:`nmfsep.audio.load_audio`), or outputs that cannot be written.
    ParameterError
        Bad parameters, or a model that separates nothing.
    """
    from threadpoolctl import threadpool_limits

    from nmfsep import separation as sep
    from nmfsep.audio import _open_for_reading

    mask_power = sep.DEFAULT_MASK_POWER if mask_power is None else float(mask_power)
    max_iter = sep.DEFAULT_SEPARATE_ITER if max_iter is None else int(max_iter)
    tol = sep.DEFAULT_TOL if tol is None else float(tol)
    l1 = sep.default_l1(free_components) if l1 is None else float(l1)
    names = sep.output_sources(model, free_components)
    missing = [n for n in outputs if n not in names]
    if missing:
        raise NmfsepError(f"no estimate for source(s) {', '.join(sorted(missing))}")
    beta_value = model.beta if beta is None else sep._beta_value(beta)
    src = Path(path)
    with contextlib.ExitStack() as stack:
        f = stack.enter_context(_open_for_reading(src))
        sr, channels = int(f.samplerate), 1 if mono else int(f.channels)
        config = sep.stft_for_rate(model.stft, model.sr, sr)
        W, n_modelled = sep.map_bases(
            model.W, model.sr, model.stft, sr, config, context=model.context
        )
        labels = model.component_sources()
        if free_components:
            labels = np.concatenate([labels, np.full(free_components, len(names) - 1)])
        window, window_sq = _windows(config)
        setup = _Setup(
            config=config,
            W=np.ascontiguousarray(W, dtype=np.float32),
            n_modelled=n_modelled,
            context=model.context,
            labels=labels,
            n_sources=len(names),
            beta=beta_value,
            mask_power=mask_power,
            l1=l1,
            max_iter=max_iter,
            tol=tol,
            window=window,
            window_sq=window_sq,
        )
        B = _block_frames(block_seconds, config, sr, channels)
        reader = _Reader(f, src, mono=mono)
        order = [n for n in names if n in outputs]
        index = [names.index(n) for n in order]
        state = _Output(config, channels, len(names))
        writers: _Writers | None = None
        n_iter, converged, n_blocks = 0, True, 0
        stack.enter_context(threadpool_limits(1))
        threads = 1 if free_components else max(1, int(n_threads))
        pool = stack.enter_context(ThreadPoolExecutor(threads)) if threads > 1 else None
        pending: deque[Future[_BlockOut]] = deque()
        W_free: np.ndarray | None = None
        rng = np.random.default_rng(random_state)

        def finish(out: _BlockOut) -> None:
            nonlocal writers, n_iter, converged, n_blocks
            n_iter = max(n_iter, out.n_iter)
            converged = converged and out.converged
            n_blocks += 1
            if writers is None:
                writers = _Writers(
                    stack,
                    {n: str(outputs[n]) for n in order},
                    sr,
                    channels,
                    subtypes or {},
                )
            for y in state.add(out, reader.n):
                writers.write(y[index])
            if callback is not None:
                callback(n_blocks, state.frames_done)

        extra = model.context - 1  # frames of context each side: exact stacked columns
        for j0, j1, lead, x in _blocks(reader, config, B, extra):
            if free_components:
                if W_free is None:
                    V0 = _frames_stft(x, config, window)
                    scale = float(np.abs(V0).mean(axis=0)[:n_modelled].mean()) + 1e-6
                    del V0
                    W_free = rng.uniform(
                        0.5, 1.5, size=(model.context * n_modelled, free_components)
                    )
                    W_free = (W_free.astype(np.float32)) * np.float32(scale)
                out = _process_block(setup, x, j0, lead, j1 - j0, W_free)
                W_free = out.W_free
                finish(out)
            elif pool is None:
                finish(_process_block(setup, x, j0, lead, j1 - j0))
            else:
                pending.append(pool.submit(_process_block, setup, x, j0, lead, j1 - j0))
                while len(pending) > threads:
                    finish(pending.popleft().result())
            del x
        while pending:
            finish(pending.popleft().result())
        if writers is None:  # pragma: no cover - every file has at least one frame
            raise AudioError("contains no audio samples (0 frames)", path=src)
        n = reader.n
        assert n is not None and state.written == n
    settings = {
        "sr": sr,
        "model_sr": model.sr,
        "stft": config.to_dict(),
        "beta": beta_value,
        "components": {
            **model.n_components,
            **({"residual": free_components} if free_components else {}),
        },
        "context": model.context,
        "mask_power": mask_power,
        "l1": l1,
        "max_iter": max_iter,
        "tol": tol,
        "n_iter": int(n_iter),
        "converged": bool(converged),
        "streaming": {
            "block_seconds": round(B * config.hop_length / sr, 3),
            "blocks": n_blocks,
            "threads": threads,
            **({"online_free_bases": True} if free_components else {}),
        },
    }
    return StreamResult(
        outputs={name: str(outputs[name]) for name in order},
        sr=sr,
        n_samples=n,
        n_iter=int(n_iter),
        converged=bool(converged),
        settings=settings,
    )


def _blocks(
    reader: _Reader, config: STFTConfig, B: int, extra: int = 0
) -> Iterator[tuple[int, int, int, np.ndarray]]:
    """Blocks ``(j0, j1, lead, samples)``: frames ``[j0, j1)`` to separate, and the samples of
    frames ``[j0 - lead, j1 + trail)`` with up to ``extra`` frames of context on each side
    (fewer at the file's ends).

    Frame ``j`` is centred on sample ``j * hop``: it covers ``[j*hop - n_fft//2, j*hop + n_fft -
    n_fft//2)`` (zeros outside the file), as in the centred STFT of the whole file. A file of
    ``n`` samples has ``1 + n // hop`` frames; ``n`` is known once the reader reaches the end.
    """
    hop, n_fft, pad = config.hop_length, config.n_fft, config.n_fft // 2
    j0 = 0
    while True:
        j1 = j0 + B
        jr = j1 + extra
        # Make sure the file's length is known if it ends within this block's reach.
        reader._read_until((jr - 1) * hop + n_fft - pad + hop)
        if reader.n == 0:
            raise AudioError("contains no audio samples (0 frames)", path=reader.path)
        if reader.n is not None:
            total = 1 + reader.n // hop
            j1, jr = min(j1, total), min(jr, total)
        if j1 <= j0:
            return
        jl = max(0, j0 - extra)
        x = reader.get(jl * hop - pad, (jr - 1) * hop + n_fft - pad)
        yield j0, j1, j0 - jl, x
        j0 = j1


class _Output:
    """Running overlap-add of the blocks' outputs, in padded coordinates (sample + n_fft//2)."""

    def __init__(self, config: STFTConfig, channels: int, n_sources: int) -> None:
        self.hop, self.pad = config.hop_length, config.n_fft // 2
        self.y = np.zeros((n_sources, channels, 0), np.float32)
        self.wss = np.zeros(0, np.float32)
        self.start = 0  # padded coordinate of y[..., 0]
        self.written = 0  # output samples written so far
        self.frames_done = 0

    def add(self, out: _BlockOut, n_total: int | None) -> Iterator[np.ndarray]:
        """Add a block (blocks come in order) and yield the output samples now final."""
        a = out.j0 * self.hop - self.start  # offset of the block in the buffer
        L = out.y.shape[-1]
        need = a + L
        if need > self.y.shape[-1]:
            grown = np.zeros((*self.y.shape[:2], need), np.float32)
            grown[..., : self.y.shape[-1]] = self.y
            wss = np.zeros(need, np.float32)
            wss[: self.wss.size] = self.wss
            self.y, self.wss = grown, wss
        self.y[..., a : a + L] += out.y
        self.wss[a : a + L] += out.wss
        self.frames_done = out.j0 + out.n_frames
        # Padded samples before frames_done * hop get no more contributions.
        final_padded = self.frames_done * self.hop
        stop = final_padded - self.pad  # in output samples
        last = n_total is not None and self.frames_done >= 1 + n_total // self.hop
        if last:
            assert n_total is not None
            stop = n_total
        stop = max(stop, self.written)
        if stop > self.written:
            lo = self.written + self.pad - self.start
            hi = stop + self.pad - self.start
            y = self.y[..., lo:hi].copy()
            w = self.wss[lo:hi]
            nz = w > np.finfo(np.float32).tiny
            y[..., nz] /= w[nz]
            self.written = stop
            keep = stop + self.pad - self.start
            self.y = np.ascontiguousarray(self.y[..., keep:])
            self.wss = np.ascontiguousarray(self.wss[keep:])
            self.start += keep
            yield y


def run_job(job: Any, model: NMFModel, *, n_threads: int = 1) -> dict[str, Any]:
    """Run a ``separate`` :class:`~nmfsep.batch.Job` by streaming; its record (as batch's).

    ``job.options`` are :func:`separate_file`'s keyword arguments (``block_seconds`` included);
    output sample formats follow :func:`nmfsep.batch.output_subtype`.
    """
    from nmfsep.audio import audio_info
    from nmfsep.batch import _record, output_subtype

    info = audio_info(job.input)
    subtypes = {
        name: output_subtype(info.subtype, Path(path).suffix.lower().lstrip("."))
        for name, path in job.outputs.items()
    }
    result = separate_file(
        job.input,
        job.outputs,
        model,
        subtypes=subtypes,
        n_threads=n_threads,
        mono=getattr(job, "mono", False),
        **job.options,
    )
    return _record(
        job.input,
        "ok",
        outputs=dict(job.outputs),
        duration=round(result.n_samples / result.sr, 3),
        settings=result.settings,
    )
