"""CTC beam search against pyctcdecode, on the same log-probability matrices, in one run.

No LM: T=400 frames, C=32 symbols, beam 16 and 64, "flat" (noisy, every symbol plausible)
and "peaked" (speech-like spikes) inputs, one utterance at a time and a batch of 32.
Reported: milliseconds per utterance, the speed-up, how often the two top-1 outputs agree,
and whether ours is at least as probable under the model as pyctcdecode's on every case
(probability = exact CTC log-probability of the output, summed over its alignments).

With LM: a 3-gram ARPA model estimated on PTB train (rnnkit.decode.arpa) and its 10k-word
lexicon, on synthetic outputs of PTB test sentences; rnnkit (lexicon + NGramLM, kenlm and
pure-Python backends) against pyctcdecode with kenlm (its unigram list = the lexicon).

    python benchmarks/decode.py            # everything (a few minutes)
    python benchmarks/decode.py --quick    # beam 16, 4 utterances, no LM part

Both use token_min_logp=-5, beam_prune_logp=-10 (pyctcdecode's defaults).
Writes benchmarks/results/decode-cpu.json (or --json PATH).
"""

from __future__ import annotations

import argparse
import json
import statistics
import string
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import rnnkit
from rnnkit.ctc import ctc_loss
from rnnkit.data import require
from rnnkit.decode import Lexicon, NGramLM, ctc_beam_search
from rnnkit.decode.arpa import write_arpa

LABELS = ["", " ", *string.ascii_lowercase, "'", "-", ".", "N"]  # 32; "" is the blank, "N" PTB's number
T, C = 400, len(LABELS)


def flat_inputs(n: int, g: torch.Generator) -> torch.Tensor:
    return (torch.randn(n, T, C, generator=g) * 1.5).log_softmax(-1)


def spoken(texts: list[str], g: torch.Generator, frames: int | None = None, noise: float = 1.0,
           confusion: float = 0.0) -> torch.Tensor:
    """Speech-like CTC outputs of texts: each symbol spikes for 1-2 frames between blanks,
    with Gaussian noise on the logits; ``confusion`` gives a random other letter a logit
    close to the spike's on that frame."""
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
    length = max(x.shape[0] for x in out)
    return torch.stack([torch.cat([x, x.new_full((length - x.shape[0], C), -30.0).log_softmax(-1)]) for x in out])


def peaked_inputs(n: int, g: torch.Generator) -> torch.Tensor:
    texts = ["".join(LABELS[int(i)] for i in torch.randint(1, C, (150,), generator=g)) for _ in range(n)]
    return spoken(texts, g, frames=T)


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


def no_lm(quick: bool) -> list[dict]:
    from pyctcdecode import build_ctcdecoder

    peer = build_ctcdecoder(LABELS)
    g = torch.Generator().manual_seed(0)
    results = []
    for kind, make in (("flat", flat_inputs), ("peaked", peaked_inputs)):
        for beam in ((16,) if quick else (16, 64)):
            n = 4 if quick else 32
            lp = make(n, g)
            x = lp.numpy()
            ours = lambda: ctc_beam_search(lp, beam_width=beam, tokens=LABELS)  # noqa: E731
            theirs = lambda: [peer.decode_beams(x[i], beam_width=beam) for i in range(n)]  # noqa: E731
            ours_one = lambda: ctc_beam_search(lp[:1], beam_width=beam, tokens=LABELS)  # noqa: E731
            theirs_one = lambda: peer.decode_beams(x[0], beam_width=beam)  # noqa: E731
            ours()  # warm-up and compilation
            reps = 3 if quick else 5
            single = (median_ms(ours_one, reps), median_ms(theirs_one, reps))
            t0 = time.perf_counter()
            theirs_out = theirs()  # the slow peer: one timed pass over the batch, reused below
            batch = (median_ms(ours, reps) / n, (time.perf_counter() - t0) * 1e3 / n)
            ours_top = [h[0].text for h in ours()]
            theirs_top = [b[0][0] for b in theirs_out]
            agree = sum(a == b for a, b in zip(ours_top, theirs_top)) / n
            margins = [exact_logp(lp[i], a) - exact_logp(lp[i], b) for i, (a, b) in enumerate(zip(ours_top, theirs_top))]
            r = dict(input=kind, beam=beam, utterances=n,
                     single_ms=dict(rnnkit=single[0], pyctcdecode=single[1], speedup=single[1] / single[0]),
                     batch_ms_per_utterance=dict(rnnkit=batch[0], pyctcdecode=batch[1], speedup=batch[1] / batch[0]),
                     top1_agreement=agree, min_logp_margin=min(margins), ours_at_least_as_probable=min(margins) >= -1e-6)
            results.append(r)
            print(f"{kind:<7}{beam:>5}{single[1]:>12.1f}{single[0]:>10.2f}{r['single_ms']['speedup']:>8.0f}x"
                  f"{batch[1]:>12.1f}{batch[0]:>10.2f}{r['batch_ms_per_utterance']['speedup']:>8.0f}x"
                  f"{agree:>9.0%}{min(margins):>12.2e}")
    return results


def with_lm(workdir: Path) -> dict:
    from pyctcdecode import build_ctcdecoder

    ptb = require("ptb")
    train = [line.split() for line in (ptb / "ptb.train.txt").read_text().splitlines() if line.strip()]
    allowed = set(LABELS[2:])
    words = sorted({w for s in train for w in s if set(w) <= allowed})
    t0 = time.perf_counter()
    arpa = write_arpa(train, workdir / "ptb3.arpa", order=3)
    build_s = time.perf_counter() - t0
    test = [line.split() for line in (ptb / "ptb.test.txt").read_text().splitlines()]
    texts = [" ".join(s) for s in test if s and all(set(w) <= allowed for w in s)][:20]
    g = torch.Generator().manual_seed(1)
    lp = spoken(texts, g, noise=1.0, confusion=0.25)
    lengths = [len(t) * 3 for t in texts]  # an upper bound on each utterance's frames
    lengths = [min(n, lp.shape[1]) for n in lengths]
    beam = 32
    lexicon = Lexicon(words, tokens=LABELS, word_delimiter=1)
    lms = {"kenlm": NGramLM(arpa, backend="kenlm"), "python": NGramLM(arpa, backend="python")}
    peer = build_ctcdecoder(LABELS, kenlm_model_path=str(arpa), unigrams=words, alpha=0.5, beta=1.0)
    x = lp.numpy()
    results: dict = {"utterances": len(texts), "beam": beam, "arpa_build_s": build_s, "lexicon_words": len(words)}

    def wer(outputs: list[str]) -> float:
        errors = total = 0
        for hyp, ref in zip(outputs, texts):
            h, r = hyp.split(), ref.split()
            d = np.arange(len(h) + 1)
            for i, rw in enumerate(r, 1):
                prev, d[0] = d[0], i
                for j, hw in enumerate(h, 1):
                    prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (rw != hw))
            errors += d[-1]
            total += len(r)
        return errors / total

    for name, lm in lms.items():
        run = lambda lm=lm: ctc_beam_search(lp, lengths, beam_width=beam, tokens=LABELS, word_delimiter=1,  # noqa: E731
                                            lexicon=lexicon, lm=lm, lm_weight=0.5, word_score=1.0)
        run()
        ms = median_ms(run, 3) / len(texts)
        results[f"rnnkit_{name}_ms"] = ms
        results[f"rnnkit_{name}_wer"] = wer([h[0].text if h else "" for h in run()])
    theirs = lambda: [peer.decode_beams(x[i, : lengths[i]], beam_width=beam)[0][0] for i in range(len(texts))]  # noqa: E731
    results["pyctcdecode_kenlm_ms"] = median_ms(theirs, 3) / len(texts)
    results["pyctcdecode_kenlm_wer"] = wer(theirs())
    results["greedy_wer"] = wer([h[0].text for h in ctc_beam_search(lp, lengths, beam_width=1, tokens=LABELS)])
    results["speedup_vs_pyctcdecode"] = results["pyctcdecode_kenlm_ms"] / results["rnnkit_kenlm_ms"]
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    print(f"rnnkit {rnnkit.__version__}, torch {torch.__version__}, T={T}, C={C}; ms per utterance")
    print(f"{'input':<7}{'beam':>5}{'pyctcdec 1':>12}{'rnnkit 1':>10}{'':>9}{'pyctcdec 32':>12}{'rnnkit 32':>10}"
          f"{'':>9}{'top1 same':>9}{'min margin':>12}")
    report = {"rnnkit": rnnkit.__version__, "no_lm": no_lm(args.quick)}
    if not args.quick:
        with tempfile.TemporaryDirectory() as tmp:
            r = with_lm(Path(tmp))
        report["with_lm"] = r
        print(f"\n3-gram PTB LM + {r['lexicon_words']}-word lexicon, beam {r['beam']}, {r['utterances']} utterances:")
        print(f"  rnnkit (kenlm)   {r['rnnkit_kenlm_ms']:8.1f} ms/utt   WER {r['rnnkit_kenlm_wer']:.1%}")
        print(f"  rnnkit (python)  {r['rnnkit_python_ms']:8.1f} ms/utt   WER {r['rnnkit_python_wer']:.1%}")
        print(f"  pyctcdecode      {r['pyctcdecode_kenlm_ms']:8.1f} ms/utt   WER {r['pyctcdecode_kenlm_wer']:.1%}")
        print(f"  greedy, no LM                        WER {r['greedy_wer']:.1%}")
        print(f"  speed-up {r['speedup_vs_pyctcdecode']:.1f}x")
    print("targets: >= 10x faster than pyctcdecode without LM (beam 16 and 64), top-1 at least as probable;"
          " >= 5x with a 3-gram LM and a 10k lexicon")
    out = args.json or Path(__file__).parent / "results" / f"decode-cpu{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
