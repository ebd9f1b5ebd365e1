"""Speech: audio reading and features, connected-digit data, timed words, the digits task and its verbs.

The task runs end to end on a stand-in FSDD of synthetic two-tone "digits" (seconds); the
real-data goal is in test_tasks_slow.py.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from rnnkit.audio import FeatureConfig, FeatureStats, LogMel, read_audio, spec_augment, warp_spectrum
from rnnkit.cli import main
from rnnkit.data import DrawnBatches, pad
from rnnkit.data import digits as D
from rnnkit.models import CTCRecognizer, CTCRecognizerConfig, LanguageModel, LanguageModelConfig
from rnnkit.speech import timed_words
from conftest import demo_client, demo_page, stand_in_dataset

RATE = 8000


def wav_bytes(wave: np.ndarray, rate: int = RATE) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def tone(digit: int, speaker: int, index: int) -> np.ndarray:
    """A stand-in for a spoken digit: two tones that depend on the digit, slightly on the speaker."""
    t = np.arange(int(RATE * (0.12 + 0.01 * (index % 5)))) / RATE
    x = np.sin(2 * np.pi * (300 + 70 * digit + 5 * speaker) * t) + 0.5 * np.sin(2 * np.pi * (1500 + 120 * digit) * t)
    return (0.3 * x * np.hanning(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def fsdd(tmp_path_factory):
    """A stand-in FSDD, registered for this module: 6 speakers x 10 digits x 12 repetitions
    (0-4 test, 5-9 valid, 10-11 train)."""
    files = {f"recordings/{d}_{s}_{i}.wav": wav_bytes(tone(d, k, i))
             for d in range(10) for k, s in enumerate(D.SPEAKERS) for i in range(12)}
    with pytest.MonkeyPatch.context() as mp:
        root = stand_in_dataset(mp, tmp_path_factory.mktemp("data"), "fsdd", files)
        yield root


# ----------------------------------------------------------------------------- audio


def test_log_mel_matches_librosa():
    """The features equal librosa's mel spectrogram (an independent STFT), logged and normalised."""
    import librosa

    wave = np.random.default_rng(0).normal(0, 0.1, 4000).astype(np.float32)
    features, frames = LogMel(FeatureConfig())(torch.from_numpy(wave)[None])
    S = librosa.feature.melspectrogram(y=wave, sr=RATE, n_fft=256, hop_length=80, win_length=200, window="hann",
                                       center=True, pad_mode="constant", power=2.0, n_mels=40, fmin=20.0)
    x = np.log(S + 1e-6).T
    x = (x - x.mean(0)) / (x.std(0) + 1e-5)
    assert int(frames[0]) == len(x) == 1 + 4000 // 80
    np.testing.assert_allclose(features[0].numpy(), x, atol=2e-3)


def test_cepstra_match_librosa_mfcc():
    """With n_ceps the features equal librosa's MFCCs of the same log-mel bands (its DCT-II,
    orthonormal), normalised; the model's input size follows, and its alignment picture
    still shows the bands."""
    import librosa

    from rnnkit.speech import Transcriber
    from rnnkit.tasks.digits import vocabulary

    wave = np.random.default_rng(2).normal(0, 0.1, 4000).astype(np.float32)
    config = FeatureConfig(n_ceps=13)
    features, _ = LogMel(config)(torch.from_numpy(wave)[None])
    S = librosa.feature.melspectrogram(y=wave, sr=RATE, n_fft=256, hop_length=80, win_length=200, window="hann",
                                       center=True, pad_mode="constant", power=2.0, n_mels=40, fmin=20.0)

    def normalised(x):
        return (x - x.mean(0)) / (x.std(0) + 1e-5)

    assert features.shape[-1] == config.size == 13
    np.testing.assert_allclose(features[0].numpy(), normalised(librosa.feature.mfcc(S=np.log(S + 1e-6), n_mfcc=13).T),
                               atol=2e-3)
    vocab = vocabulary()
    model = CTCRecognizer(CTCRecognizerConfig(input_size=13, num_tokens=len(vocab), stack_frames=3,
                                              features=config.to_dict(),
                                              rnn={"cell": "lstm", "hidden_size": 8, "bidirectional": True}))
    model.vocab = vocab
    view = Transcriber(model.eval(), beam=1).align(wave, "one")
    np.testing.assert_allclose(view.features, normalised(np.log(S + 1e-6).T), atol=2e-3)


def test_log_mel_of_a_padded_batch_equals_each_wave_alone():
    rng = np.random.default_rng(1)
    waves = [torch.from_numpy(rng.normal(0, 0.1, n).astype(np.float32)) for n in (4000, 2500, 801)]
    batch, lengths = pad(waves)
    frontend = LogMel()
    features, frames = frontend(batch, lengths)
    for i, w in enumerate(waves):
        alone, f = frontend(w[None])
        assert int(frames[i]) == int(f[0])
        torch.testing.assert_close(features[i, : int(f[0])], alone[0], atol=1e-4, rtol=0)
        assert float(features[i, int(f[0]):].abs().sum()) == 0.0


def test_read_audio_mixes_down_and_resamples(tmp_path):
    t = np.arange(22050) / 44100
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(tmp_path / "a.flac", np.stack([left, left], 1), 44100)
    wave, rate = read_audio(tmp_path / "a.flac", RATE)
    assert rate == RATE and wave.ndim == 1 and wave.dtype == np.float32 and abs(len(wave) - 4000) <= 1
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * RATE / len(wave) - 440) < 5


@pytest.mark.parametrize("content, error", [(None, "no such audio file"), (b"not audio at all", "not an audio file"),
                                            ("empty", "empty")])
def test_read_audio_errors_name_the_file(tmp_path, content, error):
    path = tmp_path / "x.wav"
    if content == "empty":
        sf.write(path, np.zeros(0, dtype=np.float32), RATE)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises((ValueError, FileNotFoundError), match=error) as e:
        read_audio(path, RATE)
    assert str(path) in str(e.value)


def test_warp_spectrum_moves_a_tone_by_its_factor_and_keeps_the_nyquist_bin():
    power = torch.rand(3, 129, 4)
    assert torch.allclose(warp_spectrum(power, torch.ones(3)), power, atol=1e-6)
    tone = torch.zeros(3, 129, 1)
    tone[:, 40] = 1.0
    warped = warp_spectrum(tone, torch.tensor([0.9, 1.0, 1.1]))[:, :, 0]
    centre = (warped * torch.arange(129)).sum(1) / warped.sum(1)
    assert torch.allclose(centre, torch.tensor([36.0, 40.0, 44.0]), atol=1e-4)
    top = torch.zeros(2, 129, 1)
    top[:, 128] = 1.0  # the Nyquist bin maps to itself
    assert torch.allclose(warp_spectrum(top, torch.tensor([0.9, 1.1]))[:, 128, 0], torch.ones(2))
    with pytest.raises(ValueError, match=r"warps \(B,\)"):
        warp_spectrum(power, torch.ones(2))


def test_features_with_bands_are_the_features_and_the_bands_features():
    waves = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, (2, 3000)).astype(np.float32))
    lengths = torch.tensor([3000, 2100])
    cepstra, bands = LogMel(FeatureConfig(n_ceps=13)), LogMel(FeatureConfig())
    features, spectrogram, frames = cepstra.with_bands(waves, lengths)
    assert torch.equal(features, cepstra(waves, lengths)[0]) and torch.equal(frames, cepstra(waves, lengths)[1])
    assert torch.equal(spectrogram, bands(waves, lengths)[0]) and spectrogram.shape[-1] == 40
    same, spectrogram, _ = bands.with_bands(waves, lengths)
    assert same is spectrogram


def test_warped_features_differ_only_when_warped():
    wave = torch.from_numpy(np.sin(2 * np.pi * 440 * np.arange(4000) / 8000).astype(np.float32))[None]
    front = LogMel(FeatureConfig(n_ceps=13))
    plain, _ = front(wave)
    assert torch.allclose(front(wave, warps=torch.ones(1))[0], plain, atol=1e-5)
    assert not torch.allclose(front(wave, warps=torch.tensor([1.1]))[0], plain, atol=1e-2)


def test_speaker_normalisation_by_each_recordings_own_stats_is_the_per_utterance_one():
    front = LogMel(FeatureConfig(n_ceps=13))
    waves = [np.sin(np.arange(n) * f).astype(np.float32) * 0.1 + np.random.default_rng(n).normal(0, 0.01, n).astype(
        np.float32) for n, f in ((4000, 0.3), (2400, 0.7))]
    batch, lengths = pad([torch.from_numpy(w) for w in waves])
    own, frames = front(batch, lengths)
    for i, w in enumerate(waves):  # a wave normalised by its own stats, as per utterance
        alone, _ = front(batch[i : i + 1], lengths[i : i + 1], stats=front.stats([w]))
        assert torch.allclose(alone, own[i : i + 1], atol=2e-3)
    pooled, _ = front(batch, lengths, stats=front.stats(waves, batch_size=1))  # the two as one speaker
    valid = torch.cat([pooled[i, : int(frames[i])] for i in range(2)]).double()
    assert torch.allclose(valid.mean(0), torch.zeros(13, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(valid.std(0, unbiased=False), torch.ones(13, dtype=torch.float64), atol=1e-3)
    assert not torch.allclose(pooled, own, atol=1e-2)
    with pytest.raises(ValueError, match="stats must be of 13 features"):
        front(batch, lengths, stats=FeatureStats(torch.zeros(40), torch.ones(40)))
    with pytest.raises(ValueError, match="at least one recording"):
        front.stats([])


def test_spec_augment_masks_within_each_utterance_deterministically():
    x = torch.randn(3, 50, 40)
    lengths = torch.tensor([50, 30, 10])
    a = spec_augment(x, lengths, torch.Generator().manual_seed(0), freq_masks=2, freq_width=8, time_masks=2,
                     time_fraction=0.2)
    b = spec_augment(x, lengths, torch.Generator().manual_seed(0), freq_masks=2, freq_width=8, time_masks=2,
                     time_fraction=0.2)
    assert torch.equal(a, b) and a.shape == x.shape
    changed = a != x
    assert bool((a[changed] == 0).all())  # masks set to 0, the mean of normalised features
    assert bool(changed.any())


def test_feature_config_and_recognizer_errors():
    with pytest.raises(ValueError, match="win_length"):
        FeatureConfig(win_length=300)
    with pytest.raises(ValueError, match="fmin/fmax"):
        FeatureConfig(fmax=5000.0)
    with pytest.raises(ValueError, match=r"FeatureConfig.n_ceps.*\[0, n_mels = 40\].*41"):
        FeatureConfig(n_ceps=41)
    with pytest.raises(ValueError, match=r"input_size \(13\) must equal the features' size.*: 40\)"):
        CTCRecognizer(CTCRecognizerConfig(input_size=13, num_tokens=5, features=FeatureConfig().to_dict()))
    with pytest.raises(ValueError, match=r"input_size \(40\) must equal the features' size.*: 13\)"):
        CTCRecognizer(CTCRecognizerConfig(input_size=40, num_tokens=5, features=FeatureConfig(n_ceps=13).to_dict()))
    with pytest.raises(ValueError, match="features: .*hop"):
        CTCRecognizer(CTCRecognizerConfig(input_size=40, num_tokens=5, features={"hop": 3}))
    with pytest.raises(ValueError, match="reads features, not recordings"):
        CTCRecognizer(CTCRecognizerConfig(input_size=40, num_tokens=5)).hear(torch.zeros(1, 800))


def test_a_recognizer_that_hears_saves_and_loads_without_its_filterbank(tmp_path):
    import rnnkit

    model = CTCRecognizer(CTCRecognizerConfig(input_size=40, num_tokens=5, stack_frames=2,
                                              features=FeatureConfig().to_dict())).eval()
    assert not any("mel" in k or "window" in k for k in model.state_dict())
    loaded = rnnkit.load(model.save(tmp_path / "m")).eval()
    wave = torch.randn(2, 1600)
    torch.testing.assert_close(loaded.hear(wave)[0], model.hear(wave)[0])
    assert loaded.frame_seconds == pytest.approx(0.02)


# ----------------------------------------------------------------------------- data


def test_splits_share_no_recording_and_hold_the_speaker_out(fsdd):
    recordings = D.load_recordings(fsdd)
    assert len(recordings) == 720
    for split in ("standard", "speaker:theo"):
        parts = D.split_recordings(recordings, split)
        keys = {name: {(r.digit, r.speaker, r.index) for r in rs} for name, rs in parts.items()}
        assert not keys["train"] & keys["valid"] and not keys["train"] & keys["test"] and not keys["valid"] & keys["test"]
        assert sum(len(k) for k in keys.values()) == 720
    held = D.split_recordings(recordings, "speaker:theo")
    assert {r.speaker for r in held["test"]} == {"theo"} and "theo" not in {r.speaker for r in held["train"]}
    with pytest.raises(ValueError, match="speaker:NAME"):
        D.split_recordings(recordings, "speaker:nobody")


def test_test_utterances_use_every_recording_once_per_pass(fsdd):
    test = D.split_recordings(D.load_recordings(fsdd), "standard")["test"]
    utterances = D.test_utterances(test, seed=0, passes=2)
    assert sum(len(u.words) for u in utterances) == 2 * len(test)
    assert all(1 <= len(u.words) <= 7 for u in utterances)
    assert [u.text for u in D.test_utterances(test, seed=0, passes=2)] == [u.text for u in utterances]
    for u in utterances[:10]:  # each span holds one of the speaker's recordings of its word, unchanged
        for word, (start, end) in zip(u.words, u.spans):
            assert any(np.array_equal(r.wave, u.wave[start:end]) for r in test
                       if r.speaker == u.speaker and D.WORDS[r.digit] == word)


def test_speed_perturbation_changes_the_duration(fsdd):
    r = D.load_recordings(fsdd)[0]
    rng = np.random.default_rng(0)
    fast = D.join([r], rng, pause=(0.0, 0.0), speed=1.1)
    slow = D.join([r], rng, pause=(0.0, 0.0), speed=0.9)
    assert len(fast.wave) == pytest.approx(len(r.wave) / 1.1, abs=2)
    assert len(slow.wave) == pytest.approx(len(r.wave) / 0.9, abs=2)


def test_level_scales_the_speech_and_not_the_pauses(fsdd):
    recordings = D.load_recordings(fsdd)[:3]
    plain = D.join(recordings, np.random.default_rng(1))
    loud = D.join(recordings, np.random.default_rng(1), level=0.1)
    speech = np.concatenate([loud.wave[a:b] for a, b in loud.spans])
    assert np.sqrt(np.mean(speech.astype(np.float64) ** 2)) == pytest.approx(0.1, rel=1e-4)
    assert loud.spans == plain.spans
    pause = slice(0, loud.spans[0][0])
    assert np.array_equal(loud.wave[pause], plain.wave[pause])
    levels = []
    for seed in range(20):
        u = D.draw_utterance(D.by_speaker(recordings), np.random.default_rng(seed), noise=0.0, levels=(-40.0, -20.0))
        speech = np.concatenate([u.wave[a:b] for a, b in u.spans]).astype(np.float64)
        levels.append(20 * np.log10(np.sqrt(np.mean(speech ** 2))))
    assert -40 - 1e-3 <= min(levels) < -35 and -25 < max(levels) <= -20 + 1e-3


@pytest.mark.parametrize("text", ["-20,-40", "-45", "loud,-20", "-20,5"])
def test_levels_option_names_the_expected_form(text, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "digits", f"--levels={text}", "--max-steps", "1"])
    assert exit_.value.code == 2
    assert "argument --levels: must be LOW,HIGH in dBFS" in capsys.readouterr().err


def test_drawn_batches_resume_exactly():
    def draw(rng):
        return {"x": torch.from_numpy(rng.integers(0, 10**6, 3))}

    whole = DrawnBatches(draw, 3, seed=5)
    seen = [b["x"] for _ in range(2) for b in whole][:5]
    first = DrawnBatches(draw, 3, seed=5)
    it = iter(first)
    next(it), next(it)
    resumed = DrawnBatches(draw, 3, seed=5)
    resumed.load_state_dict(first.state_dict())
    again = [b["x"] for b in resumed] + [b["x"] for b in resumed][:2]
    assert all(torch.equal(a, b) for a, b in zip(again, seen[2:]))
    assert not torch.equal(seen[0], seen[3])  # a new epoch draws new batches


# ----------------------------------------------------------------------------- decoding


def test_timed_words_follow_the_best_path():
    """Frames: _ _ a a _ ' ' b b  ->  a in frames [2, 4), b in [6, 8)."""
    tokens = ["_", " ", "a", "b"]
    path = [0, 0, 2, 2, 0, 1, 3, 3]
    lp = torch.full((8, 4), -8.0)
    lp[torch.arange(8), path] = -0.01
    words = timed_words(lp.log_softmax(-1), [2, 1, 3], 0.03, tokens, delimiter=1)
    assert [(w.text, round(w.start, 3), round(w.end, 3)) for w in words] == [("a", 0.06, 0.12), ("b", 0.18, 0.24)]


def test_kenlm_loading_prints_nothing(tmp_path, capfd):
    pytest.importorskip("kenlm")
    from rnnkit.decode import NGramLM
    from rnnkit.decode.arpa import write_arpa

    lm = NGramLM(write_arpa([["one", "two"], ["two", "three"]], tmp_path / "lm.arpa"), backend="kenlm")
    assert lm.backend == "kenlm"
    assert capfd.readouterr().err == ""


# ----------------------------------------------------------------------------- the task and its verbs


def test_a_recognizer_overfits_a_few_utterances(fsdd):
    """One batch of four connected utterances, learnt by heart in a few seconds: greedy decoding
    gives every transcript back."""
    from rnnkit.tasks.digits import collate, vocabulary

    torch.manual_seed(0)
    vocab, features = vocabulary(), FeatureConfig()
    test = D.split_recordings(D.load_recordings(fsdd), "standard")["test"]
    utterances = D.test_utterances(test, seed=0, passes=1, max_digits=2)[:4]
    batch = collate(utterances, LogMel(features), vocab)
    model = CTCRecognizer(CTCRecognizerConfig(input_size=40, num_tokens=len(vocab), stack_frames=3,
                                              rnn={"cell": "lstm", "hidden_size": 32, "num_layers": 1,
                                                   "bidirectional": True}))
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(80):
        loss = model.loss(batch).value
        opt.zero_grad()
        loss.backward()
        opt.step()
    hyps = model.eval().decode(batch["input"], batch["lengths"])
    assert ["".join(vocab.tokens[i] for i in h.ids) for h in hyps] == [u.text for u in utterances]


def tiny_training(fsdd: Path, runs: Path, *options: str) -> list[str]:
    """The arguments of a two-step `rnnkit train digits` of a tiny recognizer on the stand-in FSDD."""
    return ["train", "digits", "--data-dir", str(fsdd), "--runs", str(runs), "--max-steps", "2", "--hidden", "8",
            "--layers", "1", "--epoch-batches", "2", "--batch-size", "4", "--test-passes", "1", "--device", "cpu",
            "--no-progress", *options]


@pytest.fixture(scope="module")
def digits_run(fsdd, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert main(tiny_training(fsdd, runs)) == 0
    (run,) = runs.iterdir()
    return run


def test_digits_trains_evaluates_transcribes_and_aligns(digits_run, fsdd, tmp_path, capsys):
    results = json.loads((digits_run / "results.json").read_text())
    assert {f"wer_{d}" for d in ("greedy", "beam", "lexicon", "lexicon_lm")} <= set(results["valid"])
    best = digits_run / "best"
    assert (best / "lexicon.txt").read_text().split() == sorted(D.WORDS)
    assert (best / "lm.arpa").read_text().startswith("\\data\\")
    assert {"lexicon.txt", "lm.arpa"} <= set(json.loads((best / "manifest.json").read_text())["sha256"])
    capsys.readouterr()

    assert main(["evaluate", str(digits_run), "--split", "test", "--json", "--data-dir", str(fsdd), "--no-progress"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["split"] == "test" and scores["words"] == 300
    assert {f"wer_lexicon_lm_{s}" for s in D.SPEAKERS} <= set(scores)
    assert all(0 <= scores[f"cer_{d}"] for d in ("greedy", "beam", "lexicon", "lexicon_lm"))

    wav = tmp_path / "two.wav"
    wav.write_bytes(wav_bytes(np.concatenate([tone(1, 0, 0), np.zeros(800, np.float32), tone(2, 0, 1)])))
    assert main(["transcribe", str(digits_run), str(wav), "--lexicon", "--lm", "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["file"] == str(wav) and all(w["word"] in D.WORDS for w in out["words"])
    assert all(0 <= w["start"] < w["end"] <= 0.4 for w in out["words"])

    png = tmp_path / "align.png"
    assert main(["align", str(digits_run), str(wav), "--text", "One  two", "--out", str(png), "--device", "cpu"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    timed = capsys.readouterr().err.split()
    assert timed[2] == "one" and timed[5] == "two"

    # what the run left for a person, mirrored into TensorBoard: the aligned utterance as audio
    assert sf.info(str(digits_run / "samples" / "alignment.wav")).samplerate == D.RATE
    assert (digits_run / "samples" / "alignment.txt").read_text().startswith("said:  ")
    if (digits_run / "tensorboard").is_dir():
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        tags = EventAccumulator(str(digits_run / "tensorboard")).Reload().Tags()
        assert "samples/alignment" in tags["audio"] and "plots/alignment" in tags["images"]


def test_evaluate_and_transcribe_normalise_by_speaker(digits_run, fsdd, tmp_path, capsys):
    scores = {}
    for normalise in ("utterance", "speaker"):
        assert main(["evaluate", str(digits_run), "--split", "test", "--normalise", normalise, "--json", "--data-dir",
                     str(fsdd), "--no-progress"]) == 0
        scores[normalise] = json.loads(capsys.readouterr().out)
    assert scores["speaker"]["normalise"] == "speaker" and scores["speaker"]["words"] == scores["utterance"]["words"]
    files = [str(tmp_path / f"{d}.wav") for d in (3, 5)]
    for d, name in zip((3, 5), files):
        Path(name).write_bytes(wav_bytes(tone(d, D.SPEAKERS.index("theo"), 0)))
    assert main(["transcribe", str(digits_run), *files, "--one-speaker", "--json", "--device", "cpu"]) == 0
    assert [json.loads(line)["file"] for line in capsys.readouterr().out.splitlines()] == files


def test_evaluate_scores_an_ensemble_of_digits_runs(digits_run, fsdd, tmp_path, capsys):
    """rnnkit evaluate RUN --with RUN2: each member's own WER is its WER alone; a run of
    another split (which may have heard the test voice) is refused."""
    def scores(*argv):
        capsys.readouterr()
        assert main(["evaluate", *map(str, argv), "--split", "test", "--json", "--data-dir", str(fsdd),
                     "--no-progress", "--normalise", "speaker"]) == 0
        return json.loads(capsys.readouterr().out)

    def run(*options):
        runs = tmp_path / "-".join(options)
        assert main(tiny_training(fsdd, runs, *options)) == 0
        (made,) = runs.iterdir()
        return made

    other = run("--stack-frames", "2")  # the same seed: the same test utterances when alone
    alone, second = scores(digits_run), scores(other)
    both = scores(digits_run, "--with", other)
    assert both["members"] == 2 and both["words"] == alone["words"]
    for name in ("greedy", "beam", "lexicon", "lexicon_lm"):
        assert both[f"wer_{name}_member_0"] == alone[f"wer_{name}"]
        assert both[f"wer_{name}_member_1"] == second[f"wer_{name}"]
    assert main(["evaluate", str(digits_run), "--with", str(run("--split", "speaker:theo")), "--split", "test"]) == 2
    assert "its --split is 'speaker:theo', the first run's 'standard'" in capsys.readouterr().err


def test_extra_voices_join_training_only(fsdd, tmp_path, capsys):
    """--extra-voices: FSDD-named recordings of other voices (any rate) are read and drawn for
    training; a missing or empty folder, or a voice named as an FSDD speaker, is one line."""
    voices = tmp_path / "voices"
    voices.mkdir()
    for d in range(10):
        (voices / f"{d}_synth_0.wav").write_bytes(wav_bytes(tone(d, 9, 0)))
    (voices / "notes.txt").write_text("skipped")
    assert D.read_recordings(voices)[3].digit == 3 and len(D.read_recordings(voices)) == 10
    argv = tiny_training(fsdd, tmp_path / "runs", "--valid-passes", "1")
    assert main([*argv, "--extra-voices", str(voices), "--extra-share", "0.5"]) == 0
    assert "(+ 10 of 1 extra voices, 50% of the utterances)" in capsys.readouterr().err
    (voices / "3_theo_0.wav").write_bytes(wav_bytes(tone(3, 4, 0)))
    for folder, message in [(voices, r"voices \['theo'\] are FSDD's own"), (tmp_path / "none", "no such folder"),
                            (tmp_path, "no recordings named")]:
        assert main([*argv, "--extra-voices", str(folder)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and re.search(message, err), err


def test_speaker_normalisation_is_refused_without_the_task_data(digits_run, tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("one two\n")
    assert main(["evaluate", str(digits_run), "--text", str(text), "--normalise", "speaker"]) == 2
    assert "--normalise speaker scores a speech run on its task's data" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["transcribe", "{run}", "{tmp}/missing.wav"], "missing.wav: no such audio file"),
    (["transcribe", "{run}", "{wav}", "--lexicon", "{tmp}/words.txt"], "--lexicon .*words.txt: no such file"),
    (["align", "{run}", "{wav}", "--text", "seven 3"], r"no symbol for \['3'\]"),
    (["align", "{run}", "{wav}", "--text", " "], "--text is empty"),
    (["align", "{run}", "{wav}", "--text", "seven " * 20], "needs at least .* frames"),
    (["transcribe", "{lm}", "{wav}"], "LanguageModel that does not hear recordings"),
    (["transcribe", "{run}", "{tmp}/text.wav"], "text.wav: not an audio file"),
    (["transcribe", "{run}", "{tmp}/zero.wav"], "zero.wav: not an audio file"),
    (["align", "{run}", "{tmp}/empty.wav"], "empty.wav: the recording is empty"),
])
def test_speech_verbs_give_one_line_errors(digits_run, tmp_path, capsys, argv, message):
    wav = tmp_path / "one.wav"
    wav.write_bytes(wav_bytes(tone(1, 0, 0)))
    (tmp_path / "text.wav").write_text("RIFF? no, just text")
    (tmp_path / "zero.wav").write_bytes(b"")
    (tmp_path / "empty.wav").write_bytes(wav_bytes(np.zeros(0, np.float32)))
    lm = LanguageModel(LanguageModelConfig(vocab_size=5, embedding_size=4, rnn={"hidden_size": 4})).save(tmp_path / "lm")
    argv = [a.format(run=digits_run, tmp=tmp_path, wav=wav, lm=lm) for a in argv]
    assert main([*argv, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error:") and len(err.strip().splitlines()) == 1
    assert re.search(message, err), err


def test_the_demo_transcribes_an_upload(digits_run, tmp_path):
    client = demo_client(digits_run)
    assert client.get("/api/runs").json()[0]["kind"] == "transcribe"
    audio = wav_bytes(np.concatenate([tone(1, 0, 0), np.zeros(800, np.float32), tone(2, 0, 1)]))
    answer = client.post("/api/run/0", content=audio).json()
    assert all(w["word"] in D.WORDS and 0 <= w["start"] < w["end"] for w in answer["words"])
    assert answer["text"] == " ".join(w["word"] for w in answer["words"])
    assert answer["picture"] is None if not answer["words"] else answer["picture"].startswith("data:image/png;base64,")
    assert "not an audio file" in client.post("/api/run/0", content=b"RIFF? no, text").json()["error"]
    assert client.post("/api/run/0", content=b"").json() == {"error": "no recording received: record or choose a "
                                                                      "file first"}


def test_the_page_records_and_uploads_in_chromium(digits_run, tmp_path):
    """The page records from Chromium's fake microphone, encodes the recording as WAV itself
    and gets it transcribed; an uploaded file too."""
    wav = tmp_path / "two.wav"
    wav.write_bytes(wav_bytes(np.concatenate([tone(1, 0, 0), np.zeros(800, np.float32), tone(2, 0, 1)])))
    done = "['done', 'error'].includes(document.getElementById('status-0').textContent) || " \
           "document.getElementById('output-0').classList.contains('error')"
    with demo_page(digits_run) as page:
        page.wait_for_selector("#run-0[data-kind=transcribe]")
        page.click("#record-0")
        page.wait_for_function("document.getElementById('record-0').textContent === 'Stop'")
        page.wait_for_timeout(1200)
        page.click("#record-0")
        page.wait_for_function("document.getElementById('status-0').textContent.startsWith('recorded')")
        page.click("#go-0")
        page.wait_for_function(done, timeout=30000)
        assert page.get_attribute("#output-0", "class") != "error", page.text_content("#output-0")
        assert page.text_content("#status-0") == "done"
        page.set_input_files("#file-0", str(wav))
        page.click("#go-0")
        page.wait_for_function(done, timeout=30000)
        assert page.text_content("#status-0") == "done"
        heard = page.text_content("#output-0").split("\n")[0]
    assert heard == demo_client(digits_run).post("/api/run/0", content=wav.read_bytes()).json()["text"]
