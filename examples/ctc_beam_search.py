"""CTC end to end on synthetic "speech": each letter of a word is a noisy feature vector held
for a random number of frames; a CTCRecognizer learns to transcribe without any alignment,
then decodes by beam search restricted to a lexicon and scored by a 3-gram word LM.

    python examples/ctc_beam_search.py [--quick]
"""

import argparse
import random

import torch

from rnnkit.data import SequenceBatches, pad
from rnnkit.decode import BeamSearchOptions, CTCBeamDecoder, Lexicon, NGramLM, ctc_greedy
from rnnkit.decode.arpa import write_arpa
from rnnkit.metrics import wer
from rnnkit.models import CTCRecognizer, CTCRecognizerConfig
from rnnkit.train import OptimizerConfig, StoppingConfig, TrainConfig, Trainer

TOKENS = ["<blank>", " ", *"abcdefghijklmnopqrstuvwxyz"]
WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "to", "hat"]
SENTENCES = ["the cat sat on the mat", "a dog ran to the cat", "the dog sat on a hat", "a cat ran to the mat"]


def utterance(text: str, rng: random.Random, noise: float) -> torch.Tensor:
    """Frames (T, 28): each symbol's one-hot held 1-3 frames, plus noise."""
    frames = []
    for ch in text:
        frames += [TOKENS.index(ch)] * rng.randint(1, 3)
        frames += [0] * rng.randint(0, 1)
    x = torch.nn.functional.one_hot(torch.tensor(frames), len(TOKENS)).float()
    return x + noise * torch.randn(x.shape, generator=torch.Generator().manual_seed(rng.randint(0, 2**31)))


def collate(items):
    xs, texts = zip(*items)
    x, lengths = pad(list(xs))
    target, target_lengths = pad([torch.tensor([TOKENS.index(c) for c in t]) for t in texts])
    return {"input": x, "lengths": lengths, "target": target, "target_lengths": target_lengths}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    quick = ap.parse_args().quick
    rng = random.Random(0)
    torch.manual_seed(0)
    data = [(utterance(t, rng, 0.5), t) for t in SENTENCES * (10 if quick else 100)]
    model = CTCRecognizer(CTCRecognizerConfig(input_size=len(TOKENS), num_tokens=len(TOKENS),
                                              rnn={"cell": "lstm", "hidden_size": 16 if quick else 64,
                                                   "num_layers": 1, "bidirectional": True}))
    Trainer(model, SequenceBatches(data, 16, collate), TrainConfig(OptimizerConfig(lr=1e-2),
                                                                   stopping=StoppingConfig(max_steps=20 if quick else 1000)),
            progress=False).fit()

    tests = [(utterance(t, rng, 0.5), t) for t in SENTENCES * 5]
    batch = collate(tests)
    with torch.no_grad():
        log_probs, lengths = model(batch["input"], batch["lengths"])
    write_arpa([s.split() for s in SENTENCES], "/tmp/rnnkit-example-3gram.arpa", order=3)
    decoder = CTCBeamDecoder(BeamSearchOptions(beam_width=16, lm_weight=0.5, word_score=1.0), tokens=TOKENS,
                             word_delimiter=1, lexicon=Lexicon(WORDS, TOKENS, word_delimiter=1),
                             lm=NGramLM("/tmp/rnnkit-example-3gram.arpa"))
    greedy = ["".join(TOKENS[i] for i in h.ids) for h in ctc_greedy(log_probs, lengths)]
    beam = [h[0].text if h else "" for h in decoder(log_probs, lengths)]
    truth = [t for _, t in tests]
    print(f"greedy:            WER {wer(greedy, truth):.1%}   e.g. {greedy[0]!r}")
    print(f"lexicon + 3-gram:  WER {wer(beam, truth):.1%}   e.g. {beam[0]!r}")


if __name__ == "__main__":
    main()
