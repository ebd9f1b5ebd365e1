"""Every model of the taxonomy learns a tiny task in seconds, saves and loads, and keeps its contract."""

from __future__ import annotations

import pytest
import torch

import rnnkit
from rnnkit.data import SequenceBatches, StreamBatches, pad
from rnnkit.decode import StopAtLength
from rnnkit.models import (TDNN, CTCRecognizer, CTCRecognizerConfig, ConditionalGenerator,
                           ConditionalGeneratorConfig, LanguageModel, LanguageModelConfig, NeuralProbabilisticLM,
                           NeuralProbabilisticLMConfig, OutputRecurrentNet, OutputRecurrentNetConfig, Seq2Seq,
                           Seq2SeqConfig, SequenceClassifier, SequenceClassifierConfig, Tagger, TaggerConfig)
from rnnkit.models import teacher_forcing
from rnnkit.train import OptimizerConfig, StoppingConfig, TrainConfig, Trainer


def fit(model, batches, steps, lr=1e-2, **config):
    return Trainer(model, batches, TrainConfig(OptimizerConfig(lr=lr), stopping=StoppingConfig(max_steps=steps),
                                               log_every=10**9, **config), progress=False).fit()


def roundtrip(model, tmp_path):
    model.save(tmp_path / "m")
    loaded = rnnkit.load(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    return loaded.eval()


# ----------------------------------------------------------------------------- language models

@pytest.mark.parametrize("tie", [False, True])
def test_language_model_learns_a_text_and_continues_it(tmp_path, tie):
    text = "to be or not to be, that is the question. "
    vocab = sorted(set(text))
    ids = torch.tensor([vocab.index(c) for c in text * 30])
    model = LanguageModel(LanguageModelConfig(vocab_size=len(vocab), embedding_size=24, tie_weights=tie,
                                              rnn={"cell": "lstm", "hidden_size": 48, "num_layers": 1}))
    fit(model, StreamBatches(ids, 4, 20), steps=150)
    model = roundtrip(model, tmp_path).eval()
    prompt = torch.tensor([[vocab.index(c) for c in "to be or "]])
    out = model.generate(prompt, 20, greedy=True)[0]
    assert "".join(vocab[i] for i in out.ids) == "not to be, that is t"
    if tie:
        assert model.decoder.weight.data_ptr() == model.embedding.weight.data_ptr()


def test_neural_probabilistic_lm_window_and_learning(tmp_path):
    model = NeuralProbabilisticLM(NeuralProbabilisticLMConfig(vocab_size=7, context=3, embedding_size=8, hidden_size=32,
                                                              direct=True, bos=0))
    seq = torch.tensor([1, 2, 3, 1, 4, 5, 1, 2, 6] * 40)  # the next token depends on the last three
    fit(model, StreamBatches(seq, 4, 9), steps=200)
    model = roundtrip(model, tmp_path)
    with torch.no_grad():
        logits, state = model(seq[None, :50])
    assert torch.equal(logits[0, 2:49].argmax(-1), seq[3:50]), "predicts every token once it has seen 3"
    assert state.tolist() == [seq[48:50].tolist()], "the carried state is the last N-1 tokens"
    # a token only sees its window: changing a token 3 steps back changes nothing
    x = seq[None, :12].clone()
    y = x.clone()
    y[0, 5] = 6
    with torch.no_grad():
        assert torch.equal(model(x)[0][0, 8:], model(y)[0][0, 8:])


def test_tdnn_is_causal_with_a_finite_window():
    tdnn = TDNN(2, 4, context=3, num_layers=2)
    x = torch.randn(1, 13, 2)
    y = x.clone()
    y[0, 6] += 1.0
    a, b = tdnn(x), tdnn(y)
    changed = (a - b).abs().sum(-1)[0] > 0
    # each output sees (3-1)*2 + 1 = 5 steps, t-4..t: step 6 reaches outputs 6..10, never 0..5
    assert changed.tolist() == [False] * 6 + [True] * 5 + [False] * 2


# ----------------------------------------------------------------------------- tagging and classification

def test_tagger_uses_both_directions(tmp_path):
    torch.manual_seed(0)
    # tag_t = the token after t (needs the future: the backward direction)
    items = []
    for _ in range(64):
        n = int(torch.randint(4, 9, ()))
        x = torch.randint(0, 5, (n,))
        items.append((x, torch.cat([x[1:], torch.tensor([5])])))

    def collate(batch):
        x, lengths = pad([b[0] for b in batch])
        y, _ = pad([b[1] for b in batch], value=-100)
        return {"input": x, "target": y, "lengths": lengths}

    model = Tagger(TaggerConfig(num_tags=6, vocab_size=5, embedding_size=16, rnn={"cell": "gru", "hidden_size": 32,
                                                                                   "bidirectional": True}))
    fit(model, SequenceBatches(items, 16, collate, seed=1), steps=250)
    model = roundtrip(model, tmp_path)
    batch = collate(items)
    pred = model.predict(batch["input"], batch["lengths"])
    real = batch["target"] != -100
    assert (pred[real] == batch["target"][real]).float().mean() == 1.0
    assert torch.all(pred[~real] == -1)


@pytest.mark.parametrize("everywhere", [False, True])
def test_classifier_remembers_the_first_token(tmp_path, everywhere):
    torch.manual_seed(0)
    items = [(torch.randint(0, 4, (int(torch.randint(3, 8, ())),)),) for _ in range(96)]
    items = [(x[0], int(x[0][0] % 2)) for x in items]  # class = parity of the first token

    def collate(batch):
        x, lengths = pad([b[0] for b in batch])
        return {"input": x, "lengths": lengths, "target": torch.tensor([b[1] for b in batch])}

    model = SequenceClassifier(SequenceClassifierConfig(num_classes=2, vocab_size=4, embedding_size=8,
                                                        rnn={"cell": "lstm", "hidden_size": 24}, everywhere=everywhere,
                                                        step_weights="linear"))
    fit(model, SequenceBatches(items, 16, collate, seed=2), steps=200)
    model = roundtrip(model, tmp_path)
    batch = collate(items)
    assert torch.equal(model.predict(batch["input"], batch["lengths"]), batch["target"])


# ----------------------------------------------------------------------------- CTC

def test_ctc_recognizer_transcribes_after_training(tmp_path):
    torch.manual_seed(0)
    items = []
    for _ in range(48):
        symbols = torch.randint(1, 4, (int(torch.randint(2, 5, ())),))
        frames = []
        for s in symbols.tolist():  # each symbol lasts 2-3 frames, with silence between
            frames += [s] * int(torch.randint(2, 4, ())) + [0]
        feats = torch.nn.functional.one_hot(torch.tensor(frames), 4).float() + 0.1 * torch.randn(len(frames), 4)
        items.append((feats, symbols))

    def collate(batch):
        x, lengths = pad([b[0] for b in batch])
        y, y_lengths = pad([b[1] for b in batch])
        return {"input": x, "lengths": lengths, "target": y, "target_lengths": y_lengths}

    model = CTCRecognizer(CTCRecognizerConfig(input_size=4, num_tokens=4, stack_frames=2,
                                              rnn={"cell": "lstm", "hidden_size": 24, "bidirectional": True}))
    fit(model, SequenceBatches(items, 12, collate, seed=3), steps=300, lr=2e-2)
    model = roundtrip(model, tmp_path)
    batch = collate(items)
    hyps = model.decode(batch["input"], batch["lengths"])
    assert [h.ids for h in hyps] == [s.tolist() for _, s in items]
    beam = model.decode(batch["input"][:4], batch["lengths"][:4], beam_width=4)
    assert [h.ids for h in beam] == [s.tolist() for _, s in items[:4]]


# ----------------------------------------------------------------------------- sequence to sequence

@pytest.mark.parametrize("attention", ["none", "dot", "general", "additive"])
def test_seq2seq_learns_to_reverse(tmp_path, attention):
    torch.manual_seed(0)
    BOS, EOS = 1, 2
    items = [torch.randint(3, 8, (int(torch.randint(2, 5, ())),)) for _ in range(64)]

    def collate(batch):
        src, src_lengths = pad(batch)
        rev = [torch.cat([torch.tensor([BOS]), b.flip(0)]) for b in batch]
        out = [torch.cat([b.flip(0), torch.tensor([EOS])]) for b in batch]
        tgt_in, tgt_lengths = pad(rev)
        tgt_out, _ = pad(out, value=-100)
        return {"input": src, "lengths": src_lengths, "decoder_input": tgt_in, "target": tgt_out,
                "target_lengths": tgt_lengths}

    enc = {"cell": "lstm", "hidden_size": 32, "bidirectional": attention != "dot"}
    model = Seq2Seq(Seq2SeqConfig(src_vocab=8, tgt_vocab=8, bos=BOS, eos=EOS, embedding_size=16, encoder=enc,
                                  decoder_hidden=32 if attention != "dot" else 32, attention=attention))
    fit(model, SequenceBatches(items, 16, collate, seed=4), steps=400, lr=1e-2)
    model = roundtrip(model, tmp_path)
    batch = collate(items)
    hyps = model.translate(batch["input"], batch["lengths"], max_length=8)
    assert [h.ids for h in hyps] == [b.flip(0).tolist() for b in items]
    beam = model.translate(batch["input"][:5], batch["lengths"][:5], max_length=8, beam_width=3)
    assert [h.ids for h in beam] == [b.flip(0).tolist() for b in items[:5]]
    logits, alpha = model(batch["input"], batch["lengths"], batch["decoder_input"])
    if attention == "none":
        assert alpha is None
    else:  # rows are distributions over the real source steps
        real = torch.arange(batch["input"].shape[1])[None, :] < batch["lengths"][:, None]
        torch.testing.assert_close(alpha.sum(-1), torch.ones(alpha.shape[:2]))
        assert torch.all(alpha.masked_select(~real[:, None, :].expand_as(alpha)) == 0)


# ----------------------------------------------------------------------------- output recurrence

def _running_sum_task(n=64, T=8):
    """y_t = (x_t + y_{t-1}) mod 3: the previous output is the only memory needed."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 3, (n, T), generator=g)
    y = torch.zeros_like(x)
    prev = torch.zeros(n, dtype=torch.long)
    for t in range(T):
        prev = (x[:, t] + prev) % 3
        y[:, t] = prev
    return torch.nn.functional.one_hot(x, 3).float(), y


def test_output_recurrent_net_teacher_forcing_equals_step_by_step():
    model = OutputRecurrentNet(OutputRecurrentNetConfig(input_size=3, num_classes=3, hidden_size=16))
    x, y = _running_sum_task(4)
    parallel = model(x, y, teacher_forcing=1.0)
    prev = torch.full((4,), model.start)
    for t in range(x.shape[1]):
        torch.testing.assert_close(parallel[:, t], model.step(x[:, t], prev))
        prev = y[:, t]


def test_output_recurrent_net_runs_closed_loop_after_training(tmp_path):
    model = OutputRecurrentNet(OutputRecurrentNetConfig(input_size=3, num_classes=3, hidden_size=32))
    x, y = _running_sum_task()
    items = list(zip(x, y))
    collate = lambda b: {"input": torch.stack([i[0] for i in b]), "target": torch.stack([i[1] for i in b])}  # noqa: E731
    fit(model, SequenceBatches(items, 16, collate, seed=5), steps=300, lr=2e-2)
    model = roundtrip(model, tmp_path)
    assert torch.equal(model.predict(x), y)


def test_scheduled_sampling_mixes_in_model_outputs_at_the_scheduled_rate(monkeypatch):
    used = []
    original = teacher_forcing.previous_outputs

    def spy(gold, predicted, p):
        out = original(gold, predicted, p)
        differs = gold != predicted
        used.append(((out == gold) & differs).sum().item() / max(differs.sum().item(), 1))
        return out

    monkeypatch.setattr("rnnkit.models.jordan.previous_outputs", spy)
    model = OutputRecurrentNet(OutputRecurrentNetConfig(input_size=3, num_classes=3, hidden_size=8))
    x = torch.nn.functional.one_hot(torch.randint(0, 3, (4000, 6)), 3).float()
    y = torch.randint(0, 3, (4000, 6))
    for p in (0.0, 0.3, 1.0 - 1e-9):
        used.clear()
        model(x, y, teacher_forcing=p)
        rate = sum(used) / len(used)  # where gold and prediction differ, how often gold was fed
        assert rate == pytest.approx(p, abs=0.03)


# ----------------------------------------------------------------------------- vector to sequence

@pytest.mark.parametrize("halt", [False, True])
def test_conditional_generator_generates_the_sequence_of_its_class(tmp_path, halt):
    torch.manual_seed(0)
    BOS, EOS = 0, 1
    sequences = {0: [2, 3, 4], 1: [5, 5, 2, 6], 2: [6, 4]}

    def collate(batch):
        cond = torch.nn.functional.one_hot(torch.tensor(batch), 3).float()
        seqs = [torch.tensor(sequences[c] + ([] if halt else [EOS])) for c in batch]
        inp, lengths = pad([torch.cat([torch.tensor([BOS]), s[:-1]]) for s in seqs])
        tgt, _ = pad(seqs, value=-100)
        return {"condition": cond, "input": inp, "target": tgt, "lengths": lengths}

    model = ConditionalGenerator(ConditionalGeneratorConfig(condition_size=3, vocab_size=7, bos=BOS, eos=EOS,
                                                            embedding_size=8, halt=halt,
                                                            rnn={"cell": "gru", "hidden_size": 32}))
    fit(model, SequenceBatches([0, 1, 2] * 8, 6, collate, seed=6), steps=250, lr=2e-2,
        teacher_forcing={"schedule": "linear", "start": 1.0, "end": 0.5, "steps": 250})
    model = roundtrip(model, tmp_path)
    cond = torch.eye(3)
    stop = "halt" if halt else "eos"
    assert [h.ids for h in model.generate(cond, 10, stop=stop, greedy=True)] == [sequences[c] for c in range(3)]
    assert [h.ids for h in model.generate(cond, 10, stop=stop, beam_width=3)] == [sequences[c] for c in range(3)]
    tau = model.generate(cond, 10, stop=StopAtLength(torch.tensor([1, 2, 2])), greedy=True)
    assert [h.ids for h in tau] == [sequences[0][:1], sequences[1][:2], sequences[2][:2]]


def test_generator_with_a_length_head_draws_tau_first_and_stops_there(tmp_path):
    """P(y_1..y_tau) = P(tau | x) P(y_1..y_tau | tau, x): class k -> k + 1 copies of token k + 2
    (no end token at all); the length head learns tau, generation draws it first."""
    torch.manual_seed(0)
    BOS = 0

    def collate(batch):
        cond = torch.nn.functional.one_hot(torch.tensor(batch), 4).float()
        seqs = [torch.full((c + 1,), c + 2) for c in batch]
        inp, lengths = pad([torch.cat([torch.tensor([BOS]), s[:-1]]) for s in seqs])
        tgt, _ = pad(seqs, value=-100)
        return {"condition": cond, "input": inp, "target": tgt, "lengths": lengths}

    model = ConditionalGenerator(ConditionalGeneratorConfig(condition_size=4, vocab_size=6, bos=BOS, eos=1,
                                                            embedding_size=8, max_length=6,
                                                            rnn={"cell": "gru", "hidden_size": 16}))
    fit(model, SequenceBatches([0, 1, 2, 3] * 6, 8, collate, seed=1), steps=200, lr=2e-2)
    model = roundtrip(model, tmp_path)
    cond = torch.eye(4)
    taus = model.length_log_probs(cond).argmax(-1) + 1
    assert taus.tolist() == [1, 2, 3, 4]
    out = model.generate(cond, 3, stop="length", greedy=True)  # tau beyond max_length=3 still ends at tau
    assert [h.ids for h in out] == [[c + 2] * (c + 1) for c in range(4)]
    sampled = model.generate(cond, 10, stop="length", generator=torch.Generator().manual_seed(0))
    assert [len(h.ids) for h in sampled] == [1, 2, 3, 4]  # P(tau | x) is peaked after training
    with pytest.raises(ValueError, match="needs tau"):
        model.initial_state(cond)


def test_model_config_errors():
    with pytest.raises(ValueError, match="give exactly one of vocab_size"):
        Tagger(TaggerConfig(num_tags=3))
    with pytest.raises(ValueError, match="cell must be one of"):
        LanguageModel(LanguageModelConfig(vocab_size=5, rnn={"cell": "transformer"}))
    with pytest.raises(ValueError, match="unknown fields"):
        LanguageModel.from_config({"vocab_size": 5, "layers": 3})
    with pytest.raises(ValueError, match="dot attention needs query_size == memory_size"):
        Seq2Seq(Seq2SeqConfig(src_vocab=5, tgt_vocab=5, attention="dot", decoder_hidden=16,
                              encoder={"cell": "gru", "hidden_size": 8}))
    with pytest.raises(ValueError, match="prompt must be"):
        LanguageModel(LanguageModelConfig(vocab_size=5)).generate(torch.zeros(3, dtype=torch.long), 4)


# ----------------------------------------------------------------------------- word embeddings


@pytest.mark.parametrize("mode", ["skipgram", "cbow"])
def test_word_embeddings_put_words_of_the_same_contexts_together(mode, tmp_path):
    """Two families of words that appear in the same frames ("the X sat", "a Y ran"): after
    training, each word's nearest neighbour is from its own family."""
    from rnnkit.models import WordEmbeddings, WordEmbeddingsConfig
    from rnnkit.tasks.embeddings import windows

    torch.manual_seed(0)
    cats, dogs = ["cat", "kitten", "tiger"], ["car", "truck", "bus"]
    tokens = ["<unk>", "the", "sat", "a", "drove", *cats, *dogs]
    g = torch.Generator().manual_seed(0)
    text = []
    for _ in range(3000):
        family, frame = (cats, ("the", "sat")) if torch.rand((), generator=g) < 0.5 else (dogs, ("a", "drove"))
        text += [frame[0], family[int(torch.randint(3, (), generator=g))], frame[1]]
    ids = torch.tensor([tokens.index(w) for w in text])
    model = WordEmbeddings(WordEmbeddingsConfig(vocab_size=len(tokens), embedding_size=8, mode=mode, negatives=3))
    model.set_noise(torch.bincount(ids, minlength=len(tokens)).float())
    fit(model, SequenceBatches(list(range(len(ids))), 64, windows(ids, 1), seed=0), steps=300, lr=2e-2)
    model = roundtrip(model, tmp_path)
    near = model.nearest(torch.tensor([tokens.index(w) for w in cats + dogs]), 1)[:, 0]
    families = [tokens[int(i)] in cats for i in near]
    assert families == [True, True, True, False, False, False]


def test_copy_vectors_into_a_language_models_embedding():
    from rnnkit.models import copy_vectors

    vectors = torch.randn(4, 6)
    lm = LanguageModel(LanguageModelConfig(vocab_size=5, embedding_size=6))
    copied = copy_vectors(vectors, ["<unk>", "a", "b", "c"], lm.embedding, ["<unk>", "<eos>", "c", "a", "z"])
    assert copied == 3
    torch.testing.assert_close(lm.embedding.weight[[0, 2, 3]], vectors[[0, 3, 1]])
    with pytest.raises(ValueError, match="the vectors have 5 dimensions but the embedding has 6"):
        copy_vectors(torch.randn(4, 5), ["a"] * 4, lm.embedding, ["a"])
