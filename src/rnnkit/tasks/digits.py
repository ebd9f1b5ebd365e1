"""digits: speech recognition with CTC on connected spoken digits (FSDD), from recordings to timed words.

Utterances of 1 to 7 digits said by one speaker are joined from FSDD's isolated recordings
(rnnkit.data.digits); the model hears 13 cepstral coefficients of 40 log-mel bands (MFCCs)
every 10 ms, stacks 3 frames into one (30 ms), and a bidirectional LSTM emits y_t over the
letters of the digit words, the space and the blank. Trained with CTC (no alignments), it is
decoded four ways: greedy, prefix beam search, beam search restricted to the ten words
(lexicon), and lexicon plus a word trigram model estimated on training transcripts.

Training utterances are drawn afresh for every batch (speed perturbation 0.85-1.15, white
noise; when asked, a random speech level, vocal tract length perturbation and SpecAugment
masks); valid and test utterances are fixed (seeded). Features are normalised per utterance;
``rnnkit evaluate RUN --normalise speaker`` normalises each test voice over all of its test
utterances instead (their mean and std: speaker CMVN, no transcripts needed).
``--split standard`` is FSDD's official split (recordings 0-4 test); ``--split speaker:NAME``
holds one speaker out entirely.

    rnnkit evaluate RUN --split test      WER and CER of each decoder, WER per speaker
    rnnkit transcribe RUN FILE.wav        timed words
    rnnkit align RUN FILE.wav             spectrogram, posteriors, gamma and Viterbi picture
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

import rnnkit
from rnnkit.arguments import fraction, nonnegative_int, positive_float, positive_int
from rnnkit.audio import FeatureConfig, LogMel, spec_augment
from rnnkit.data import DrawnBatches, SequenceBatches, Vocabulary, pad
from rnnkit.data.digits import (RATE, SPEAKERS, WORDS, Recording, Utterance, by_speaker, draw_parts,
                                draw_utterance, load_recordings, read_recordings, split_recordings,
                                test_utterances)
from rnnkit.decode import Hypothesis
from rnnkit.decode.arpa import arpa_text
from rnnkit.decode.ensemble import ctc_ensemble
from rnnkit.files import read_utf8, write_text_atomic
from rnnkit.models import CTCRecognizer, CTCRecognizerConfig
from rnnkit.progress import bar
from rnnkit.run_dir import Checkpoint, RunDir
from rnnkit.speech import DECODERS, Transcriber
from rnnkit.tasks.base import Task, register
from rnnkit.tasks.common import add_common_arguments, device, fit_and_score, progress, run_dir, task_trainer
from rnnkit.train import OptimizerConfig, ScheduleConfig
from rnnkit.train.distributed import is_main_process

NAME = "digits"
HELP = "speech recognition with CTC: connected spoken digits (FSDD), decoded with a lexicon and an n-gram LM"
DEFAULT_STEPS = 1500
#: the symbols: blank, the word delimiter, the letters of the ten digit words
TOKENS = ("<blank>", " ", *sorted(set("".join(WORDS))))


def split_name(text: str) -> str:
    if text != "standard" and not (text.startswith("speaker:") and text[len("speaker:"):] in SPEAKERS):
        raise argparse.ArgumentTypeError(f"must be 'standard' or 'speaker:NAME' with NAME one of "
                                         f"{', '.join(SPEAKERS)}. Received: {text!r}")
    return text


def speeds(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(0.5 <= v <= 2.0 for v in values):
        raise argparse.ArgumentTypeError(f"must be comma-separated speed factors in [0.5, 2]. Received: {text!r}")
    return values


def levels(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        low, high = 0.0, -1.0
    if not -80 <= low <= high <= 0:
        raise argparse.ArgumentTypeError(f"must be LOW,HIGH in dBFS with -80 <= LOW <= HIGH <= 0 (e.g. -45,-20). "
                                         f"Received: {text!r}")
    return low, high


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", type=split_name, default="standard",
                   help="standard (FSDD's: recordings 0-4 test) or speaker:NAME (NAME held out: "
                        f"{', '.join(SPEAKERS)})")
    p.add_argument("--hidden", type=positive_int, default=160, help="hidden units per direction and layer")
    p.add_argument("--layers", type=positive_int, default=3, help="bidirectional LSTM layers")
    p.add_argument("--stack-frames", type=positive_int, default=3, help="10 ms frames stacked into one output frame")
    p.add_argument("--dropout", type=fraction, default=0.1, help="dropout on the recurrent stack's input and output")
    p.add_argument("--batch-size", type=positive_int, default=32, help="utterances per batch")
    p.add_argument("--lr", type=positive_float, default=2e-3, help="Adam's learning rate")
    p.add_argument("--epoch-batches", type=positive_int, default=100, help="batches between dev evaluations")
    p.add_argument("--max-digits", type=positive_int, default=7, help="digits per utterance: 1 to this")
    p.add_argument("--speeds", type=speeds, default=[0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15],
                   help="speed perturbation factors (comma-separated)")
    p.add_argument("--levels", type=levels, default=None,
                   help="speech level of each training utterance, uniform in LOW,HIGH dBFS (RMS; default: as "
                        "recorded)")
    p.add_argument("--noise", type=fraction, default=0.01, help="white noise std drawn in [0, this] per training utterance")
    p.add_argument("--cepstra", type=nonnegative_int, default=13,
                   help="hear this many cepstral coefficients of the 40 log-mel bands (MFCCs; 0: the bands)")
    p.add_argument("--vtlp", type=fraction, default=0.0,
                   help="vocal tract length perturbation: each training spectrum warped by a factor in "
                        "[1 - this, 1 + this] (0: off)")
    p.add_argument("--extra-voices", default=None, metavar="DIR",
                   help="more training voices: FSDD-named recordings ({digit}_{voice}_{index}.wav; voices not "
                        "FSDD's), e.g. synthesised ones (benchmarks/synthetic_voices.py); training only")
    p.add_argument("--extra-share", type=fraction, default=0.6,
                   help="the share of training utterances drawn from --extra-voices")
    p.add_argument("--spec-augment", type=nonnegative_int, default=0,
                   help="SpecAugment: this many frequency and time masks per utterance (0: off)")
    p.add_argument("--test-passes", type=positive_int, default=3,
                   help="test utterances use every test recording this many times, grouped anew")
    p.add_argument("--valid-passes", type=positive_int, default=3,
                   help="valid utterances use every valid recording this many times (a steadier dev loss)")
    p.add_argument("--beam", type=positive_int, default=16, help="beam width of the evaluation's beam searches")
    p.add_argument("--lm-order", type=positive_int, default=3, help="order of the word n-gram model")
    p.add_argument("--lm-weight", type=float, default=0.5, help="weight of the word LM's log-probability")
    p.add_argument("--word-score", type=float, default=0.0, help="bonus per word with the LM")
    add_common_arguments(p)


def vocabulary() -> Vocabulary:
    return Vocabulary(list(TOKENS), level="char")


def encode(words: Sequence[str], vocab: Vocabulary) -> torch.Tensor:
    return torch.tensor([vocab.index[c] for c in " ".join(words)])


def collate(utterances: Sequence[Utterance], frontend: LogMel, vocab: Vocabulary,
            generator: torch.Generator | None = None, masks: int = 0, vtlp: float = 0.0) -> dict[str, Any]:
    """A batch of utterances: normalised log-mel features (each spectrum warped by a factor
    uniform in [1 - vtlp, 1 + vtlp] when ``vtlp``; SpecAugment masks when ``masks``), the
    spelled transcripts as CTC targets."""
    waves, samples = pad([torch.from_numpy(u.wave) for u in utterances])
    warps = 1 + vtlp * (2 * torch.rand(len(utterances), generator=generator) - 1) if vtlp else None
    features, frames = frontend(waves, samples, warps)
    if masks:
        features = spec_augment(features, frames, generator, freq_masks=masks, time_masks=masks)
    targets, target_lengths = pad([encode(u.words, vocab) for u in utterances])
    return {"input": features, "lengths": frames, "target": targets, "target_lengths": target_lengths}


def lm_transcripts(args: argparse.Namespace, groups: dict, count: int = 20000) -> list[list[str]]:
    """Transcripts drawn as the training utterances are: the lexicon and the word n-gram model."""
    rng = np.random.default_rng(args.seed + 3)
    return [[WORDS[r.digit] for r in draw_parts(groups, rng, args.max_digits)] for _ in range(count)]


def extra_voices(folder: str | None) -> dict[str, list[Recording]]:
    """The recordings of ``--extra-voices`` by voice ({} without it), or a ValueError naming
    the folder and what is wrong with it."""
    if folder is None:
        return {}
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(f"--extra-voices {folder}: no such folder")
    groups = by_speaker(read_recordings(path))
    if not groups:
        raise ValueError(f"--extra-voices {folder}: no recordings named {{digit}}_{{voice}}_{{index}}.wav in it")
    clash = sorted(set(groups) & set(SPEAKERS))
    if clash:
        raise ValueError(f"--extra-voices {folder}: voices {clash} are FSDD's own (their recordings would leak "
                         "across the splits); name the extra voices otherwise")
    return groups


def train(args: argparse.Namespace) -> RunDir:
    if args.max_steps is None and args.epochs is None and args.minutes is None:
        args.max_steps = DEFAULT_STEPS
    torch.manual_seed(args.seed)
    parts = split_recordings(load_recordings(args.data_dir), args.split)
    groups = by_speaker(parts["train"])
    extra = extra_voices(args.extra_voices)
    vocab, features = vocabulary(), FeatureConfig(n_ceps=args.cepstra)
    model = CTCRecognizer(CTCRecognizerConfig(
        input_size=features.size, num_tokens=len(vocab), blank=0, stack_frames=args.stack_frames,
        dropout=args.dropout, features=features.to_dict(),
        rnn={"cell": "lstm", "hidden_size": args.hidden, "num_layers": args.layers, "bidirectional": True}))
    model.vocab = vocab
    frontend = LogMel(features)  # the data's own, on the CPU (the model's moves to --device)

    def draw(rng: np.random.Generator) -> dict[str, Any]:
        """A batch of utterances of one digit count (similar lengths: little padding)."""
        count = int(rng.integers(1, args.max_digits + 1))
        batch = [draw_utterance(extra if extra and rng.random() < args.extra_share else groups, rng,
                                args.max_digits, args.speeds, args.noise, count, args.levels)
                 for _ in range(args.batch_size)]
        return collate(batch, frontend, vocab, torch.Generator().manual_seed(int(rng.integers(2**62))),
                       args.spec_augment, args.vtlp)

    valid = utterances("valid", args, parts)
    valid_batches = [collate(valid[i : i + 64], frontend, vocab) for i in range(0, len(valid), 64)]
    run = run_dir(NAME, args)
    transcripts = lm_transcripts(args, groups)
    lexicon = "\n".join(sorted({w for words in transcripts for w in words})) + "\n"
    lm = arpa_text(transcripts, order=args.lm_order)
    if is_main_process():
        more = (f" (+ {sum(map(len, extra.values()))} of {len(extra)} extra voices, {args.extra_share:.0%} of the "
                f"utterances)" if extra else "")
        print(f"digits ({args.split}): {len(parts['train'])} training recordings of {len(groups)} speakers{more} "
              f"(utterances drawn afresh), {len(valid)} valid utterances; "
              f"{sum(p.numel() for p in model.parameters()):,} parameters; at most {args.max_steps or '-'} steps; "
              f"run directory {run.path}", file=sys.stderr)
    trainer = task_trainer(
        NAME, model, DrawnBatches(draw, args.epoch_batches, seed=args.seed),
        SequenceBatches.prebuilt(valid_batches, shuffle=False), run, args,
        artifacts={Checkpoint.LEXICON: lexicon, Checkpoint.LM: lm}, optimizer=OptimizerConfig("adam", lr=args.lr),
        schedule=ScheduleConfig("cosine") if args.max_steps else ScheduleConfig("plateau", patience=2),
        clip_norm=5.0, log_every=25)
    done = fit_and_score(trainer, run, lambda best: evaluate(best, "valid", args))
    if done is None:
        return run
    result, scores = done
    print(f"digits: {result['step']} steps in {result['seconds'] / 60:.1f} min; valid WER: "
          + ", ".join(f"{k[4:]} {v:.2%}" for k, v in scores.items() if k.startswith("wer_") and k[4:] in DECODERS),
          file=sys.stderr)
    return run


def utterances(split: str, args: argparse.Namespace, parts: dict[str, list] | None = None) -> list[Utterance]:
    """The fixed valid or test utterances of a run (the same in train and in evaluate)."""
    parts = parts or split_recordings(load_recordings(args.data_dir), args.split)
    if split == "test":
        return test_utterances(parts["test"], args.seed + 1, passes=args.test_passes, max_digits=args.max_digits)
    return test_utterances(parts["valid"], args.seed + 2, passes=args.valid_passes, max_digits=args.max_digits)


def evaluate(checkpoint: Checkpoint, split: str, args: argparse.Namespace) -> dict[str, Any]:
    """WER and CER (jiwer) of each decoder on the valid or test utterances, and WER per speaker
    with the lexicon and LM. ``args.normalise``: "utterance" (features normalised per utterance,
    as in training) or "speaker" (each speaker's utterances by their stats over them all).
    With ``args.ensemble`` (other runs of the same split) each decoder's hypotheses of every
    run are pooled and ranked by the runs' mean CTC log-probability (:func:`ctc_ensemble`;
    greedy pools each run's best path, the searches their ``--beam`` best), decoded with the
    first run's lexicon and LM; each run's own WER is reported too (``wer_NAME_member_k``)."""
    import jiwer

    dev = device(args.device)
    members = [checkpoint, *(getattr(args, "ensemble", None) or [])]
    models = [rnnkit.load(c.path, map_location=dev) for c in members]
    lexicon = read_utf8(checkpoint.path / Checkpoint.LEXICON).split()
    lm = checkpoint.path / Checkpoint.LM
    utts = utterances(split, args)
    normalise = getattr(args, "normalise", "utterance")  # training's dev scores: as trained
    groups: dict[str | None, list[int]] = {}  # one group, or each speaker's utterances
    for i, u in enumerate(utts):
        groups.setdefault(u.speaker if normalise == "speaker" else None, []).append(i)
    log_probs: list[list[Tensor]] = [[torch.empty(0)] * len(utts) for _ in models]
    with bar(len(utts) * len(models), progress(args), desc=f"{split} utterances", unit="utt", leave=False) as shown:
        for model, heard in zip(models, log_probs):
            first = Transcriber(model, beam=1)
            for speaker, rows in groups.items():
                stats = None if speaker is None else first.speaker([utts[i].wave for i in rows])
                for start in range(0, len(rows), 32):
                    chunk = rows[start : start + 32]
                    for i, lp in zip(chunk, first.log_probs([utts[i].wave for i in chunk], stats)):
                        heard[i] = lp
                    shown.update(len(chunk))
    refs = [u.text for u in utts]
    out: dict[str, Any] = {"utterances": len(utts), "words": sum(len(u.words) for u in utts),
                           "normalise": normalise, **({"members": len(models)} if len(models) > 1 else {})}

    def text(h: Hypothesis) -> str:
        return " ".join(h.text.split())

    best: list[str] = []
    for name, (search, use_lexicon, use_lm) in DECODERS.items():
        def decoder(model: CTCRecognizer, nbest: int) -> Transcriber:
            return Transcriber(model, beam=args.beam if search else 1, lexicon=lexicon if use_lexicon else None,
                               lm=lm if use_lm else None, lm_weight=args.lm_weight, word_score=args.word_score,
                               nbest=nbest)

        if len(models) == 1:
            hyps = [text(h) for h in decoder(models[0], 1).decode(log_probs[0])]
        else:
            nbests = [decoder(model, args.beam if search else 1).candidates(heard)
                      for model, heard in zip(models, log_probs)]
            hyps = [text(h) for h in ctc_ensemble(nbests, log_probs, models[0].config.blank)]
            for k, (model, heard) in enumerate(zip(models, log_probs)):  # each run as it decodes alone
                own = [text(h) for h in decoder(model, 1).decode(heard)]
                out[f"wer_{name}_member_{k}"] = float(jiwer.wer(refs, own))
        out[f"wer_{name}"] = float(jiwer.wer(refs, hyps))
        out[f"cer_{name}"] = float(jiwer.cer(refs, hyps))
        best = hyps
    for speaker in sorted({u.speaker for u in utts}):
        rows = [i for i, u in enumerate(utts) if u.speaker == speaker]
        out[f"wer_lexicon_lm_{speaker}"] = float(jiwer.wer([refs[i] for i in rows], [best[i] for i in rows]))
    return out


def after_train(run: RunDir, args: argparse.Namespace) -> None:
    """plots/alignment.png: the alignment picture of the first valid utterance of three or more
    digits, as the best checkpoint recognises it, with the recording and its words in samples/;
    and the commands that go further."""
    from rnnkit.audio import write_audio
    from rnnkit.plots import ctc_alignment
    from rnnkit.speech import load_transcriber

    utterance = next((u for u in utterances("valid", args) if len(u.words) >= 3), None)
    if utterance is not None:
        transcriber = load_transcriber(run.path, device(args.device), beam=args.beam, lexicon="")
        view = transcriber.align(utterance.wave)
        out = ctc_alignment(view, run.plots / "alignment.png",
                            f"a valid utterance of {utterance.speaker}: \"{utterance.text}\"")
        run.samples.mkdir(exist_ok=True)
        write_audio(run.samples / "alignment.wav", utterance.wave, RATE)
        heard = " ".join(f"{w.text} ({w.start:.2f}-{w.end:.2f} s)" for w in view.words)
        write_text_atomic(run.samples / "alignment.txt", f"said:  {utterance.text}\nheard: {heard}\n")
        print(f"alignment picture: {out}", file=sys.stderr)
    print(f"\nTest it once:      rnnkit evaluate {run.path} --split test\n"
          f"Transcribe a file: rnnkit transcribe {run.path} FILE.wav --lexicon --lm\n"
          f"Align a file:      rnnkit align {run.path} FILE.wav [--text 'seven three']", file=sys.stderr)


TASK = register(Task(NAME, HELP, __doc__, add_arguments, train, evaluate, ("test", "valid"), after_train,
                     normalises=True, ensembles=True))
