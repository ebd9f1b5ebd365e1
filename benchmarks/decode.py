"""CTC beam search against pyctcdecode and flashlight-text, on the same log-probability matrices, in one run.

No LM: T=400 frames, C=32 symbols, beam 16 and 64, "flat" (noisy, every symbol plausible)
and "peaked" (speech-like spikes) inputs, one utterance at a time and a batch of 32.
Reported: milliseconds per utterance, the speed-ups, how often the top-1 outputs agree,
and whether ours is at least as probable under the model as the peers' on every case
(probability = exact CTC log-probability of the output, summed over its alignments).

With LM: a 3-gram ARPA model estimated on PTB train (rnnkit.decode.arpa), its 9,933-word
lexicon, 100 PTB test sentences spelled into synthetic peaky character outputs with
confusable letters (each ends in a silence, the word delimiter). rnnkit (the word LM compiled
into the search, with look-ahead; and the same model scored per word in Python, the path
before) against flashlight-text's LexiconDecoder (with and without its look-ahead,
"smearing") and pyctcdecode with kenlm. All on one thread, the same beam (32), the same
objective: CTC log-prob + 0.5 ln P_LM + 1.0 per word (flashlight's kenlm scores are log10, so
its LM weight is 0.5 ln 10). On that objective, the script counts the utterances where each
answer scores higher than the other's, and where ours scores below the true sentence (a
search error).

    python benchmarks/decode.py            # everything (a few minutes)
    python benchmarks/decode.py --quick    # beam 16, 4 utterances, no LM part

Pruning: token_min_logp=-5, beam_prune_logp=-10 for rnnkit and pyctcdecode (pyctcdecode's
defaults); flashlight tries every token (beam_size_token=32) within beam_threshold=10.
rnnkit is also run with token_min_logp=-7, and with recombination (BeamSearchOptions). Peers that are not installed are skipped with a
printed reason (pip install flashlight-text pyctcdecode kenlm).
Writes benchmarks/results/decode-cpu.json (or --json PATH).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import statistics
import string
import tempfile
import time
from pathlib import Path

import torch

import rnnkit
from rnnkit.ctc import ctc_loss
from rnnkit.data import require
from rnnkit.decode import BeamSearchOptions, CTCBeamDecoder, Lexicon, NGramLM, ctc_beam_search
from rnnkit.decode.arpa import write_arpa

LABELS = ["", " ", *string.ascii_lowercase, "'", "-", ".", "N"]  # 32; "" is the blank, "N" PTB's number
T, C = 400, len(LABELS)


def flat_inputs(n: int, g: torch.Generator) -> torch.Tensor:
    return (torch.randn(n, T, C, generator=g) * 1.5).log_softmax(-1)


def spoken(texts: list[str], g: torch.Generator, frames: int | None = None, noise: float = 1.0,
           confusion: float = 0.0) -> tuple[torch.Tensor, list[int]]:
    """Speech-like CTC outputs of texts, padded, and each one's frames: each symbol spikes for
    1-2 frames between blanks, with Gaussian noise on the logits; ``confusion`` gives a random
    other letter a logit close to the spike's on that frame."""
    out = []
    for text in texts:
        ids = [LABELS.index(ch) for ch in text]
        path: list[int] = []
        for i in ids:
            path += [i] * int(torch.randint(1, 3, (1,), generator=g)) + [0] * int(torch.randint(0, 3, (1,), generator=g))
        n = frames or len(path) + 2
        path = (path + [0] * n)[:n]
        logits = torch.randn(n, C, generator=g) * noise
        logits[torch.arange(n), torch.tensor(path)] += 6.0
        if confusion:
            other = torch.randint(2, 28, (n,), generator=g)
            hit = torch.rand(n, generator=g) < confusion
            logits[torch.arange(n)[hit], other[hit]] += 5.0
        out.append(logits.log_softmax(-1))
    return torch.nn.utils.rnn.pad_sequence(out, batch_first=True), [x.shape[0] for x in out]


def peaked_inputs(n: int, g: torch.Generator) -> torch.Tensor:
    texts = ["".join(LABELS[int(i)] for i in torch.randint(1, C, (150,), generator=g)) for _ in range(n)]
    return spoken(texts, g, frames=T)[0]


def exact_logp(lp: torch.Tensor, text: str) -> float:
    ids = [LABELS.index(ch) for ch in text]
    target = torch.tensor([ids]) if ids else torch.zeros(1, 0, dtype=torch.long)
    return -ctc_loss(lp[None].double(), target, [lp.shape[0]], [len(ids)], reduction="none").item()


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def rounds_ms(fns: dict, rounds: int, per: int) -> dict[str, float]:
    """Median over rounds of each function's milliseconds / ``per``, the functions interleaved
    within a round (so that a noisy moment hits every peer)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3 / per)
    return {name: statistics.median(v) for name, v in times.items()}


def missing(module: str) -> str | None:
    """None if ``module`` imports, else the reason it does not."""
    try:
        importlib.import_module(module)
    except ImportError as e:
        return f"{module} is not installed ({e.msg})"
    return None


class Flashlight:
    """flashlight-text's CTC decoders on float32 (T, C) matrices, one utterance per call."""

    def __init__(self, beam: int, arpa: Path | None = None, words: list[str] | None = None,
                 smearing: bool = True, lm_weight: float = 0.5, word_score: float = 1.0) -> None:
        from flashlight.lib.text import decoder as fl

        self.words = None
        if arpa is None:
            options = fl.LexiconFreeDecoderOptions(beam, C, 10.0, 0.0, 0.0, True, fl.CriterionType.CTC)
            self.decoder = fl.LexiconFreeDecoder(options, fl.ZeroLM(), 1, 0, [])
            return
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import create_word_dict

        spellings = {w: [[*w, " "]] for w in words}  # each word ends in the silence, torchaudio's convention
        spellings["<unk>"] = []
        self.words = create_word_dict(spellings)
        lm = KenLM(str(arpa), self.words)
        trie = fl.Trie(C, 1)
        start = lm.start(False)
        for w, spelled in spellings.items():
            index = self.words.get_index(w)
            for s in spelled:
                trie.insert([LABELS.index(ch) for ch in s], index, lm.score(start, index)[1])
        trie.smear(fl.SmearingMode.MAX if smearing else fl.SmearingMode.NONE)
        options = fl.LexiconDecoderOptions(beam, C, 10.0, lm_weight * math.log(10), word_score, -math.inf, 0.0, True,
                                           fl.CriterionType.CTC)
        self.decoder = fl.LexiconDecoder(options, trie, lm, 1, 0, self.words.get_index("<unk>"), [], False)

    def __call__(self, x: torch.Tensor) -> str:
        x = x.float().contiguous()
        best = self.decoder.decode(x.data_ptr(), x.shape[0], x.shape[1])[0]
        if self.words is not None:
            return " ".join(self.words.get_entry(i) for i in best.words if i >= 0)
        frames = list(best.tokens)[1:-1]  # flashlight puts a virtual silence before the first frame and after the last
        ids = [t for i, t in enumerate(frames) if t != 0 and (i == 0 or t != frames[i - 1])]
        return "".join(LABELS[t] for t in ids)


def no_lm(quick: bool) -> list[dict]:
    """Per utterance: rnnkit one utterance at a time, the batch on one thread and on every core;
    the peers one utterance at a time (they take no batch)."""
    from pyctcdecode import build_ctcdecoder

    peer = build_ctcdecoder(LABELS)
    no_flashlight = missing("flashlight.lib.text.decoder")
    if no_flashlight:
        print(f"flashlight-text skipped: {no_flashlight}")
    g = torch.Generator().manual_seed(0)
    results = []
    reps = 3 if quick else 5
    cores = os.cpu_count() or 1
    for kind, make in (("flat", flat_inputs), ("peaked", peaked_inputs)):
        for beam in ((16,) if quick else (16, 64)):
            n = 4 if quick else 32
            lp = make(n, g)
            x = lp.numpy()
            batch = lambda threads=1: ctc_beam_search(lp, beam_width=beam, tokens=LABELS, threads=threads)  # noqa: E731
            batch()  # warm-up and compilation
            ms = {"rnnkit, one at a time": median_ms(lambda: [ctc_beam_search(lp[i : i + 1], beam_width=beam, tokens=LABELS)
                                                             for i in range(n)], reps) / n,
                  "rnnkit, batch": median_ms(batch, reps) / n,
                  f"rnnkit, batch on {cores} cores": median_ms(lambda: batch(cores), reps) / n}
            t0 = time.perf_counter()
            tops = {"pyctcdecode": [peer.decode_beams(x[i], beam_width=beam)[0][0] for i in range(n)]}  # slow: once
            ms["pyctcdecode"] = (time.perf_counter() - t0) * 1e3 / n
            if not no_flashlight:
                fl = Flashlight(beam)
                ms["flashlight"] = median_ms(lambda: [fl(lp[i]) for i in range(n)], reps) / n
                tops["flashlight"] = [fl(lp[i]) for i in range(n)]
            ours_top = [h[0].text for h in batch()]
            r = dict(input=kind, beam=beam, utterances=n, ms_per_utterance=ms)
            line = f"{kind:<7}{beam:>5}" + "".join(f"{v:>10.2f}" for v in list(ms.values())[:3])
            for name, top in tops.items():
                margins = [exact_logp(lp[i], a) - exact_logp(lp[i], b) for i, (a, b) in enumerate(zip(ours_top, top))]
                r[name] = dict(speedup=ms[name] / ms["rnnkit, batch"], top1_agreement=sum(a == b for a, b in zip(ours_top, top)) / n,
                               min_logp_margin=min(margins), ours_at_least_as_probable=min(margins) >= -1e-6)
                line += (f"   {name} {ms[name]:.1f} ms = {r[name]['speedup']:.1f}x, same top-1 "
                         f"{r[name]['top1_agreement']:.0%}, min margin {r[name]['min_logp_margin']:+.2f}")
            results.append(r)
            print(line)
    return results


def word_error_rate(outputs: list[str], texts: list[str]) -> float:
    import jiwer

    return jiwer.wer(texts, [o if o.strip() else "<empty>" for o in outputs])


def with_lm(workdir: Path, sentences: int = 100) -> dict:
    from pyctcdecode import build_ctcdecoder

    ptb = require("ptb")
    train = [line.split() for line in (ptb / "ptb.train.txt").read_text().splitlines() if line.strip()]
    allowed = set(LABELS[2:])
    words = sorted({w for s in train for w in s if set(w) <= allowed})
    t0 = time.perf_counter()
    arpa = write_arpa(train, workdir / "ptb3.arpa", order=3)
    build_s = time.perf_counter() - t0
    test = [line.split() for line in (ptb / "ptb.test.txt").read_text().splitlines()]
    texts = [" ".join(s) for s in test if s and all(set(w) <= allowed for w in s)][:sentences]
    lp, lengths = spoken([t + " " for t in texts], torch.Generator().manual_seed(1), noise=1.5, confusion=0.4)
    beam, n = 32, len(texts)
    lexicon = Lexicon(words, tokens=LABELS, word_delimiter=1)
    ngram = NGramLM(arpa)
    t0 = time.perf_counter()
    ngram.compiled()
    compile_s = time.perf_counter() - t0

    def rnnkit(token_min_logp: float, threads: int = 1, lookahead: str = "max", compiled: bool = True,
               recombine: bool = False):
        decoder = CTCBeamDecoder(BeamSearchOptions(beam_width=beam, lm_weight=0.5, word_score=1.0,
                                                   token_min_logp=token_min_logp, lm_lookahead=lookahead,
                                                   recombine=recombine),
                                 tokens=LABELS, word_delimiter=1, lexicon=lexicon, lm=ngram, threads=threads,
                                 compile_word_lm=compiled)
        return lambda: [" ".join(h[0].text.split()) if h else "" for h in decoder(lp, lengths)]

    decoders = {"rnnkit": rnnkit(-5.0), "rnnkit, token_min_logp -7": rnnkit(-7.0),
                "rnnkit, -7, recombine": rnnkit(-7.0, recombine=True),
                "rnnkit, no look-ahead": rnnkit(-5.0, lookahead="none"),
                "rnnkit, every core": rnnkit(-5.0, threads=os.cpu_count() or 1),
                "rnnkit, word LM in Python": rnnkit(-5.0, compiled=False)}
    no_flashlight = missing("flashlight.lib.text.decoder.kenlm")
    if no_flashlight:
        print(f"flashlight-text skipped: {no_flashlight}")
    else:
        for name, smearing in (("flashlight", True), ("flashlight, no smearing", False)):
            fl = Flashlight(beam, arpa, words, smearing=smearing)
            decoders[name] = lambda fl=fl: [fl(lp[i, : lengths[i]]) for i in range(n)]
    peer = build_ctcdecoder(LABELS, kenlm_model_path=str(arpa), unigrams=words, alpha=0.5, beta=1.0)
    x = lp.numpy()
    pyctcdecode = lambda: [" ".join(peer.decode_beams(x[i, : lengths[i]], beam_width=beam)[0][0].split())  # noqa: E731
                           for i in range(n)]
    outputs = {name: fn() for name, fn in decoders.items()}  # warm-up, compilation, and the outputs
    ms = rounds_ms(decoders, 3, n)
    t0 = time.perf_counter()
    outputs["pyctcdecode"] = pyctcdecode()  # the slow peer: one timed pass
    ms["pyctcdecode"] = (time.perf_counter() - t0) * 1e3 / n

    def objective(i: int, text: str) -> float:
        """What every decoder here maximises: CTC log-prob (of the words and the final silence) +
        0.5 ln P_LM(sentence) + 1.0 per word."""
        said = text.split()
        state, lm_logp = ngram.initial_state(), 0.0
        for w in said:
            delta, state = ngram.score(state, w)
            lm_logp += delta
        lm_logp += ngram.final(state)
        return exact_logp(lp[i, : lengths[i]], " ".join(said) + " ") + 0.5 * lm_logp + 1.0 * len(said)

    truth = [objective(i, t) for i, t in enumerate(texts)]
    scores = {name: [objective(i, t) for i, t in enumerate(out)] for name, out in outputs.items()}
    results: dict = {"utterances": n, "beam": beam, "arpa_build_s": build_s, "lm_compile_s": compile_s,
                     "lexicon_words": len(words), "decoders": {}}
    reference = "flashlight" if "flashlight" in outputs else "pyctcdecode"
    for name in outputs:
        ours, theirs = scores[name], scores[reference]
        results["decoders"][name] = dict(
            ms_per_utterance=ms[name], wer=word_error_rate(outputs[name], texts),
            time_vs_reference=ms[name] / ms[reference],
            higher_than_reference=sum(a > b + 1e-6 for a, b in zip(ours, theirs)),
            lower_than_reference=sum(a < b - 1e-6 for a, b in zip(ours, theirs)),
            below_truth=sum(a < t - 1e-6 for a, t in zip(ours, truth)))
    results["reference"] = reference
    results["greedy_wer"] = word_error_rate([h[0].text for h in ctc_beam_search(lp, lengths, beam_width=1, tokens=LABELS)],
                                            texts)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)  # one thread each (the "every core" rows use them all)
    print(f"rnnkit {rnnkit.__version__}, torch {torch.__version__}, T={T}, C={C}; ms per utterance")
    print(f"{'input':<7}{'beam':>5}{'one':>10}{'batch':>10}{'batch*':>10}   rnnkit one utterance at a time, a batch of "
          "32 on one thread, on every core (batch*); peers one at a time, as multiples of rnnkit's batch time")
    report = {"rnnkit": rnnkit.__version__, "no_lm": no_lm(args.quick)}
    if not args.quick:
        with tempfile.TemporaryDirectory() as tmp:
            r = with_lm(Path(tmp))
        report["with_lm"] = r
        print(f"\n3-gram PTB LM + {r['lexicon_words']}-word lexicon, beam {r['beam']}, {r['utterances']} utterances, "
              f"one thread (LM compiled in {r['lm_compile_s']:.1f} s); against {r['reference']} on the shared objective:")
        print(f"  {'decoder':<28}{'ms/utt':>8}{'x ref':>7}{'WER':>7}{'higher':>8}{'lower':>7}{'< truth':>8}")
        for name, d in r["decoders"].items():
            print(f"  {name:<28}{d['ms_per_utterance']:>8.2f}{d['time_vs_reference']:>7.2f}{d['wer']:>7.1%}"
                  f"{d['higher_than_reference']:>8}{d['lower_than_reference']:>7}{d['below_truth']:>8}")
        print(f"  greedy, no LM: WER {r['greedy_wer']:.1%}")
    print("targets: >= 10x faster than pyctcdecode without LM, top-1 at least as probable; lexicon + LM: <= 1.0x "
          "flashlight-text's time with WER <= flashlight's; a batch never slower per utterance than one at a time")
    out = args.json or Path(__file__).parent / "results" / f"decode-cpu{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
