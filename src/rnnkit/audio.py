"""Audio in, features out: reading and resampling recordings, log-mel filterbanks, SpecAugment.

A recognizer hears x_t, one vector per 10 ms frame: the log energies of a short-time
spectrum in mel-spaced bands,

    x_t = log(M |STFT(w)_t|^2 + eps)        normalised per utterance: (x_t - mean) / std per band

(or by the mean and std over all of a speaker's recordings, :meth:`LogMel.stats`: speaker normalisation)

with M the mel filterbank (librosa's, Slaney's mel scale) and the STFT torch's, so the
features are computed on the model's device, batched. With ``n_ceps`` the frame is the first
n_ceps coefficients of the bands' orthonormal DCT-II instead (MFCCs, as librosa's
``feature.mfcc`` computes them): truncating the cepstrum smooths the spectrum's envelope and
drops the voice's pitch harmonics, which the narrow low bands otherwise resolve. Recordings are read with soundfile,
mixed down to mono and resampled to the model's rate with soxr (the resampler librosa uses).

These need the ``audio`` extra: ``pip install 'rnnkit[audio]'``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.checks import is_int, is_number, require

__all__ = ["FeatureConfig", "FeatureStats", "LogMel", "read_audio", "resample", "spec_augment", "warp_spectrum"]

EXTRA = "pip install 'rnnkit[audio]' (or: pip install soundfile soxr librosa)"


def _needs(module: str) -> Any:
    """Import an audio library, or an ImportError naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"audio features need the {module} package: {EXTRA}") from None


def resample(wave: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """``wave`` (float32, mono) from ``rate`` to ``new_rate`` samples per second (soxr, high quality)."""
    if rate == new_rate:
        return wave
    return _needs("soxr").resample(wave, rate, new_rate).astype(np.float32, copy=False)


def read_audio(path: str | Path, rate: int | None = None) -> tuple[np.ndarray, int]:
    """A recording as (float32 samples in [-1, 1], mono, sample rate): any format soundfile
    reads (WAV, FLAC, OGG, ...), channels averaged, resampled to ``rate`` when given."""
    soundfile = _needs("soundfile")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such audio file")
    try:
        data, found = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as e:
        raise ValueError(f"{path}: not an audio file soundfile can read ({str(e).splitlines()[0][:200]})") from None
    if data.shape[0] == 0:
        raise ValueError(f"{path}: the recording is empty (0 samples)")
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if rate is None:
        return np.ascontiguousarray(wave), int(found)
    return resample(np.ascontiguousarray(wave), int(found), rate), rate


def write_audio(path: str | Path, wave: np.ndarray, rate: int) -> Path:
    """``wave`` (samples in [-1, 1]) as a 16-bit PCM WAV file."""
    _needs("soundfile").write(str(path), np.clip(wave, -1, 1), rate, subtype="PCM_16")
    return Path(path)


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel features: sample_rate (Hz), n_fft and win_length (samples; the window is Hann),
    hop_length (samples between frames), n_mels bands from fmin to fmax Hz (None: rate / 2);
    n_ceps: 0 for the log-mel bands themselves, else that many cepstral coefficients (MFCCs)."""

    sample_rate: int = 8000
    n_fft: int = 256
    win_length: int = 200
    hop_length: int = 80
    n_mels: int = 40
    fmin: float = 20.0
    fmax: float | None = None
    n_ceps: int = 0

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels"):
            value = getattr(self, name)
            require(is_int(value) and value >= 1, f"FeatureConfig.{name}", "an integer >= 1", value)
        require(self.win_length <= self.n_fft, "FeatureConfig.win_length", f"<= n_fft ({self.n_fft})",
                self.win_length)
        require(is_int(self.n_ceps) and 0 <= self.n_ceps <= self.n_mels, "FeatureConfig.n_ceps",
                f"an integer in [0, n_mels = {self.n_mels}] (0: the log-mel bands)", self.n_ceps)
        top = self.sample_rate / 2 if self.fmax is None else self.fmax
        require(is_number(self.fmin) and 0 <= self.fmin < top <= self.sample_rate / 2, "FeatureConfig.fmin/fmax",
                f"0 <= fmin < fmax <= sample_rate / 2 = {self.sample_rate / 2}", (self.fmin, self.fmax))

    @property
    def frame_seconds(self) -> float:
        return self.hop_length / self.sample_rate

    @property
    def size(self) -> int:
        """Numbers per frame: n_ceps, or n_mels without cepstra."""
        return self.n_ceps or self.n_mels

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LogMel(nn.Module):
    """Waves (B, N) -> normalised log-mel features (B, T, size), T = 1 + N // hop_length
    (frames centred on samples 0, hop, 2 hop, ...); size is n_mels, or n_ceps when the config
    asks for cepstra. No parameters: the filterbank, the DCT and the window are buffers that
    are not saved, rebuilt from the config."""

    def __init__(self, config: FeatureConfig | None = None, **options: Any) -> None:
        super().__init__()
        self.config = c = config if config is not None else FeatureConfig(**options)
        librosa = _needs("librosa")
        mel = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax)
        self.register_buffer("mel", torch.from_numpy(mel).float(), persistent=False)  # (n_mels, n_fft / 2 + 1)
        self.register_buffer("window", torch.hann_window(c.win_length), persistent=False)
        if c.n_ceps:  # scipy's orthonormal DCT-II of the bands, first n_ceps rows (librosa's MFCC)
            dct = _needs("scipy.fft").dct(np.eye(c.n_mels), type=2, norm="ortho", axis=0)[: c.n_ceps]
            self.register_buffer("dct", torch.from_numpy(dct).float(), persistent=False)  # (n_ceps, n_mels)
        else:
            self.dct = None

    def frames(self, samples: Tensor) -> Tensor:
        """Frames of waves of ``samples`` samples each."""
        return 1 + samples // self.config.hop_length

    def forward(self, waves: Tensor, lengths: Tensor | None = None, warps: Tensor | None = None,
                stats: FeatureStats | None = None) -> tuple[Tensor, Tensor]:
        """(features (B, T, size), frames (B,)) of waves (B, N) of ``lengths`` samples each
        (default N). Each utterance is normalised over its own frames, or by ``stats`` (the
        mean and std of a speaker's features, :meth:`stats`: speaker normalisation). The STFT
        pads with zeros (as librosa does), so a wave's features are the same alone or padded in
        a batch. ``warps`` (B,): each utterance's spectrum warped by that factor first
        (:func:`warp_spectrum`, vocal tract length perturbation in training)."""
        x, frames, valid = self._unnormalised(waves, lengths, warps)
        return _normalise(self._cepstra(x), valid, stats), frames

    def with_bands(self, waves: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(features, normalised log-mel bands (B, T, n_mels), frames) from one STFT: what the
        model hears (normalised per utterance) and the spectrogram a picture of the recording
        shows, the same tensor when the features are the bands."""
        x, frames, valid = self._unnormalised(waves, lengths)
        bands = _normalise(x, valid, None)
        return bands if self.dct is None else _normalise(self._cepstra(x), valid, None), bands, frames

    @torch.no_grad()
    def stats(self, waves: Sequence[np.ndarray], batch_size: int = 32) -> FeatureStats:
        """The mean and std of each feature over every frame of ``waves`` (one speaker's
        recordings, samples at the config's rate), for :meth:`forward`'s ``stats``."""
        if not waves:
            raise ValueError("stats needs at least one recording")
        total = torch.zeros(self.config.size, dtype=torch.float64)
        squares, count = torch.zeros_like(total), 0
        for i in range(0, len(waves), batch_size):
            chunk = [torch.as_tensor(np.asarray(w, dtype=np.float32)) for w in waves[i : i + batch_size]]
            lengths = torch.tensor([len(w) for w in chunk])
            x, _, valid = self._unnormalised(nn.utils.rnn.pad_sequence(chunk, batch_first=True), lengths)
            x = self._cepstra(x).double().cpu()[valid.cpu()[..., 0] > 0]  # (frames, size)
            total += x.sum(0)
            squares += x.square().sum(0)
            count += len(x)
        mean = total / count
        return FeatureStats(mean.float(), (squares / count - mean.square()).clamp(min=0).sqrt().float())

    def _cepstra(self, x: Tensor) -> Tensor:
        """The features of log-mel bands x (B, T, n_mels): their first n_ceps cepstral
        coefficients (B, T, n_ceps) when the config asks for cepstra, else the bands."""
        return x if self.dct is None else x @ self.dct.T

    def _unnormalised(self, waves: Tensor, lengths: Tensor | None,
                      warps: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(log-mel bands (B, T, n_mels), frames (B,), valid (B, T, 1): 1 on each wave's frames)."""
        c = self.config
        if waves.dim() != 2:
            raise ValueError(f"waves must be (batch, samples). Received shape {tuple(waves.shape)}")
        B, N = waves.shape
        waves = waves.to(self.window.device)  # the features are computed where the filterbank lives
        lengths = torch.full((B,), N, dtype=torch.long) if lengths is None else lengths.long().cpu()
        # samples past each wave's end are zeroed, so padding never leaks into its last frames
        inside = torch.arange(N, device=waves.device)[None, :] < lengths.to(waves.device)[:, None]
        spectrum = torch.stft(waves.float() * inside, c.n_fft, c.hop_length, c.win_length, self.window,
                              center=True, pad_mode="constant", return_complex=True)
        power = spectrum.abs().square()  # (B, n_fft / 2 + 1, T)
        if warps is not None:
            power = warp_spectrum(power, warps.to(power.device))
        energy = self.mel @ power  # (B, n_mels, T)
        x = torch.log(energy + 1e-6).transpose(1, 2)  # (B, T, n_mels)
        frames = self.frames(lengths)
        valid = (torch.arange(x.shape[1])[None, :] < frames[:, None]).to(x.device).unsqueeze(-1).float()
        return x, frames, valid


@dataclass(frozen=True)
class FeatureStats:
    """The mean and std (size,) of features over many frames (a speaker's), for normalisation."""

    mean: Tensor
    std: Tensor


def _normalise(x: Tensor, valid: Tensor, stats: FeatureStats | None) -> Tensor:
    """(x - mean) / std per feature, zero past each utterance's frames: the utterance's own
    mean and std over its valid frames, or ``stats``'."""
    if stats is None:
        count = valid.sum(1, keepdim=True)
        mean = (x * valid).sum(1, keepdim=True) / count
        std = (((x - mean) * valid).square().sum(1, keepdim=True) / count).sqrt()
    else:
        if stats.mean.shape != x.shape[-1:]:
            raise ValueError(f"stats must be of {x.shape[-1]} features, as the frames are. Received "
                             f"{tuple(stats.mean.shape)}")
        mean, std = stats.mean.to(x.device), stats.std.to(x.device)
    return (x - mean) / (std + 1e-5) * valid


def warp_spectrum(power: Tensor, warps: Tensor, boundary: float = 0.8) -> Tensor:
    """Vocal tract length perturbation (Jaitly & Hinton 2013): spectra (B, F, T) over F bins
    from 0 to the Nyquist frequency, each warped along frequency by its factor alpha (B,):

        f' = alpha f                                     for f <= f_0 = boundary min(alpha, 1) / alpha
        f' = alpha f_0 + (1 - alpha f_0)(f - f_0) / (1 - f_0)   above (the Nyquist frequency stays put)

    (frequencies as fractions of the Nyquist frequency), so alpha > 1 moves the formants up as a
    shorter vocal tract would. The warped spectrum at f' is the power at f, linearly interpolated
    between bins; alpha = 1 leaves it as it is."""
    if power.dim() != 3 or warps.shape != power.shape[:1]:
        raise ValueError(f"warp_spectrum needs power (B, F, T) and warps (B,). Received shapes "
                         f"{tuple(power.shape)} and {tuple(warps.shape)}")
    B, F_, _ = power.shape
    alpha = warps.to(power.dtype)[:, None]  # (B, 1)
    out = torch.linspace(0, 1, F_, dtype=power.dtype, device=power.device)[None, :]  # f' per bin
    f0 = boundary * torch.clamp(alpha, max=1) / alpha
    source = torch.where(out <= alpha * f0, out / alpha, f0 + (out - alpha * f0) * (1 - f0) / (1 - alpha * f0))
    position = source.clamp(0, 1) * (F_ - 1)  # (B, F): the source bin of each output bin
    low = position.floor().long().clamp(max=F_ - 2)
    weight = (position - low).unsqueeze(-1)
    below = power.gather(1, low.unsqueeze(-1).expand(-1, -1, power.shape[2]))
    above = power.gather(1, (low + 1).unsqueeze(-1).expand(-1, -1, power.shape[2]))
    return below + weight * (above - below)


def spec_augment(features: Tensor, lengths: Tensor, generator: torch.Generator, freq_masks: int = 2,
                 freq_width: int = 8, time_masks: int = 2, time_fraction: float = 0.05) -> Tensor:
    """SpecAugment's masking (Park et al. 2019) on normalised features (B, T, F): per utterance,
    ``freq_masks`` bands of up to ``freq_width`` channels and ``time_masks`` spans of up to
    ``time_fraction`` of its frames set to 0 (the mean). A new tensor; random from ``generator``."""
    out = features.clone()
    B, _, F_ = features.shape
    for b in range(B):
        T = int(lengths[b])
        for _ in range(freq_masks):
            width = int(torch.randint(0, freq_width + 1, (), generator=generator))
            start = int(torch.randint(0, max(F_ - width, 0) + 1, (), generator=generator))
            out[b, :, start : start + width] = 0
        longest = math.floor(time_fraction * T)
        for _ in range(time_masks):
            width = int(torch.randint(0, longest + 1, (), generator=generator))
            start = int(torch.randint(0, max(T - width, 0) + 1, (), generator=generator))
            out[b, start : start + width, :] = 0
    return out
