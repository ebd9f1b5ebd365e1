"""A bidirectional Tagger (time-synchronous many-to-many): words like "run" or "play" are a
noun after "the" and a verb after "to"; only the context tells which. Reports the accuracy
on those ambiguous words, which a tagger reading words alone would get right half the time.

    python examples/tagger.py [--quick]
"""

import argparse
import random

import torch

from rnnkit.data import SequenceBatches, Vocabulary, pad
from rnnkit.models import Tagger, TaggerConfig
from rnnkit.train import OptimizerConfig, StoppingConfig, TrainConfig, Trainer

TAGS = ["DET", "NOUN", "VERB", "PART", "PRON", "ADP"]
AMBIGUOUS = ["run", "play", "walk", "talk", "swim"]
NOUNS = ["dog", "park", "game", "river"]


def sentence(rng: random.Random) -> list[tuple[str, str]]:
    """Either "i like the run in the park" (noun) or "i like to run in the park" (verb)."""
    word = rng.choice(AMBIGUOUS)
    as_noun = rng.random() < 0.5
    return [("i", "PRON"), ("like", "VERB"), ("the" if as_noun else "to", "DET" if as_noun else "PART"),
            (word, "NOUN" if as_noun else "VERB"), ("in", "ADP"), ("the", "DET"), (rng.choice(NOUNS), "NOUN")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    quick = ap.parse_args().quick
    rng = random.Random(0)
    torch.manual_seed(0)
    train = [sentence(rng) for _ in range(200 if quick else 2000)]
    vocab = Vocabulary.from_words(w for s in train for w, _ in s)

    def collate(sentences):
        words, lengths = pad([vocab.encode([w for w, _ in s]) for s in sentences])
        tags, _ = pad([torch.tensor([TAGS.index(t) for _, t in s]) for s in sentences], value=-100)
        return {"input": words, "lengths": lengths, "target": tags}

    model = Tagger(TaggerConfig(num_tags=len(TAGS), vocab_size=len(vocab), embedding_size=16,
                                rnn={"cell": "lstm", "hidden_size": 16, "bidirectional": True}))
    Trainer(model, SequenceBatches(train, 32, collate), TrainConfig(OptimizerConfig(lr=1e-2),
                                                                    stopping=StoppingConfig(max_steps=15 if quick else 300)),
            progress=False).fit()
    test = [sentence(rng) for _ in range(500)]
    batch = collate(test)
    predicted = model.eval().predict(batch["input"], batch["lengths"])
    right = [TAGS[int(predicted[i, 3])] == s[3][1] for i, s in enumerate(test)]
    print(f"ambiguous words tagged right from their context: {sum(right) / len(right):.1%} of {len(right)}")


if __name__ == "__main__":
    main()
