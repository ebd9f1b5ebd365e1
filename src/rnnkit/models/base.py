"""What every rnnkit model shares: a JSON config, saving and loading, the training interface.

A model is an ``nn.Module`` built from a dataclass config of JSON values (numbers, strings,
lists, dicts). ``model.save(dir)`` writes

    dir/config.json          {"format": "rnnkit-model", "class": "LanguageModel", "config": {...}}
    dir/model.safetensors    the weights (safetensors: loading runs no code)
    dir/vocab.json           the model's vocabulary, when it has one (``model.vocab``)

and :func:`load` rebuilds any model from such a directory, or from a run directory (its best
checkpoint), with its vocabulary attached. For training, a model defines
``loss(batch, state=None, teacher_forcing=1.0) -> Loss``: the trainer knows nothing else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model
from torch import Tensor, nn

from rnnkit.checks import is_int, is_number, require
from rnnkit.data.batching import Batch
from rnnkit.data.vocabulary import Vocabulary
from rnnkit.files import fsync_replace, read_json, verify_manifest, write_json_atomic, write_manifest
from rnnkit.recurrent import GRU, LSTM, RNN, LeakyRNN, Recurrent
from rnnkit.run_dir import Checkpoint, RunDir
from rnnkit.version import __version__

FORMAT = "rnnkit-model"
REGISTRY: dict[str, type[Model]] = {}

#: config fields that are counts or sizes (>= 1 when given), and token ids (>= 0)
_SIZES = frozenset({"vocab_size", "num_classes", "num_tokens", "num_tags", "input_size", "output_size", "embedding_size",
                    "hidden_size", "src_vocab", "tgt_vocab", "decoder_hidden", "decoder_layers", "stack_frames",
                    "context", "condition_size"})
_IDS = frozenset({"bos", "eos", "blank"})


def check_config(config: Any) -> None:
    """A ValueError naming the field for a size below 1, a token id below 0, a dropout outside
    [0, 1) or a non-positive init range: caught when the model is built, not deep in torch."""
    name = type(config).__name__
    for f in dataclasses.fields(config):
        value, what = getattr(config, f.name), f"{name}.{f.name}"
        if value is None:
            continue
        if f.name in _SIZES:
            require(is_int(value) and value >= 1, what, "an integer >= 1", value)
        elif f.name in _IDS:
            require(is_int(value) and value >= 0, what, "a token id >= 0", value)
        elif f.name in ("dropout", "word_dropout", "label_smoothing"):
            require(is_number(value) and 0 <= value < 1, what, "in [0, 1)", value)
        elif f.name == "init_range":
            require(is_number(value) and value > 0, what, "> 0 (or None)", value)


def check_labels(config: Any, count: int, kind: str) -> None:
    """``config.labels``, when given, names each of the ``count`` outputs (``kind``: "tag", "class")."""
    labels = config.labels
    if labels is not None and (len(labels) != count or not all(isinstance(x, str) for x in labels)):
        raise ValueError(f"{type(config).__name__}.labels must be {count} {kind} names. Received: {labels!r}")


class Loss(NamedTuple):
    """A model's divergence on a batch.

    value: the mean divergence (what is back-propagated); count: how many units it averages
    (tokens, frames, sequences) so that means over batches can be weighted; state: the
    recurrent state to carry into the next chunk (truncated BPTT), or None; stats: extra
    numbers to log (e.g. correct predictions).
    """

    value: Tensor
    count: int
    state: Any = None
    stats: dict[str, float] = {}


class Model(nn.Module):
    """Base of the models: ``Config`` (a dataclass), ``loss``, ``save``; see the module docstring.

    ``vocab``: the :class:`rnnkit.data.Vocabulary` of the tokens the model reads and writes, if
    any; it is saved and loaded with the weights, so text goes in and comes out.
    """

    Config: ClassVar[type]
    #: the loss is a mean negative log-likelihood per token, so evaluation also reports perplexity
    reports_perplexity: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        REGISTRY[cls.__name__] = cls

    def __init__(self, config: Any) -> None:
        super().__init__()
        if not isinstance(config, self.Config):
            raise ValueError(f"{type(self).__name__} needs a {self.Config.__name__}. Received: {type(config).__name__}")
        check_config(config)
        self.config = config
        self.vocab: Vocabulary | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Model:
        names = {f.name for f in dataclasses.fields(cls.Config)}
        unknown = sorted(set(config) - names)
        if unknown:
            raise ValueError(f"{cls.__name__} config has unknown fields {unknown}; expected a subset of {sorted(names)}")
        return cls(cls.Config(**config))

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    def encode_sentences(self, sentences: Sequence[Sequence[str]]) -> tuple[Tensor, Tensor]:
        """Sentences of words as padded ids and lengths in the model's vocabulary
        (:meth:`rnnkit.data.Vocabulary.encode_sentences`)."""
        if self.vocab is None:
            raise ValueError(f"this {type(self).__name__} has no vocabulary (model.vocab): it cannot read words")
        return self.vocab.encode_sentences(sentences)

    def loss(self, batch: Batch, state: Any = None, teacher_forcing: float = 1.0) -> Loss:
        raise TypeError(f"{type(self).__name__} does not define loss()")

    def save(self, directory: str | Path) -> Path:
        """Write config.json and model.safetensors into ``directory`` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_json_atomic(directory / Checkpoint.MODEL_CONFIG, {"format": FORMAT, "rnnkit": __version__,
                                                      "class": type(self).__name__, "config": self.config_dict()})
        tmp = directory / (Checkpoint.WEIGHTS + ".tmp")
        save_model(self, str(tmp))  # handles tied weights: shared tensors are stored once
        fsync_replace(tmp, directory / Checkpoint.WEIGHTS)
        if self.vocab is not None:
            self.vocab.save(directory / Checkpoint.VOCAB)
        write_manifest(directory)
        return directory


def check_weights(weights: Path, model: nn.Module) -> None:
    """Every tensor in the file is floating point (an integer tensor would be cast silently) and
    every parameter loaded is finite."""
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():
            dtype = f.get_slice(key).get_dtype()
            if not dtype.startswith(("F", "BF")):
                raise ValueError(f"{weights}: tensor {key!r} is {dtype}, not floating point")
    for name, p in model.state_dict().items():
        if p.is_floating_point() and not bool(torch.isfinite(p).all()):
            raise ValueError(f"{weights}: tensor {name!r} holds NaN or infinite values")


def load(directory: str | Path, map_location: str | torch.device = "cpu") -> Model:
    """Rebuild the model saved in ``directory``: a :meth:`Model.save` directory, a checkpoint,
    or a run directory (its best checkpoint, else its last). Its vocabulary (vocab.json), if
    saved, is attached as ``model.vocab``.

    Refuses, with a clear error, directories without a valid config, configs of unknown
    models, and weight files that are not intact safetensors (truncated, tampered with,
    or a pickle under the name model.safetensors).
    """
    directory = Path(directory)
    run = RunDir(directory)
    if not Checkpoint(directory).exists() and (run.best.exists() or run.checkpoints()):
        directory = Checkpoint.resolve(directory).path
    config_path, weights = directory / Checkpoint.MODEL_CONFIG, directory / Checkpoint.WEIGHTS
    if not config_path.is_file() or not weights.is_file():
        raise FileNotFoundError(f"{directory} is not an rnnkit model directory: it needs config.json and "
                                "model.safetensors")
    meta = read_json(config_path, "an rnnkit model config")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{config_path} is not an rnnkit model config (expected \"format\": \"{FORMAT}\")")
    cls = REGISTRY.get(meta.get("class", ""))
    if cls is None:
        raise ValueError(f"{config_path} names the unknown model class {meta.get('class')!r}; known: {sorted(REGISTRY)}")
    verify_manifest(directory)
    if not isinstance(meta.get("config"), dict):
        raise ValueError(f"{config_path}: \"config\" must be a JSON object of the model's settings")
    try:
        model = cls.from_config(meta["config"])
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"{config_path}: not a valid {cls.__name__} config ({e})") from None
    try:
        missing, unexpected = load_model(model, str(weights), strict=False, device=str(map_location))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise ValueError(f"{weights} is not a valid safetensors file for this {cls.__name__} "
                         f"(truncated, altered, or not safetensors at all): {e}") from None
    if missing or unexpected:
        raise ValueError(f"{weights} does not match {cls.__name__}: missing {sorted(missing)}, "
                         f"unexpected {sorted(unexpected)}")
    check_weights(weights, model)
    if (directory / Checkpoint.VOCAB).is_file():
        vocab = Vocabulary.load(directory / Checkpoint.VOCAB)
        size = getattr(model.config, "vocab_size", len(vocab))
        if len(vocab) != size:
            raise ValueError(f"{directory / Checkpoint.VOCAB} has {len(vocab)} tokens but the model has {size}; "
                             "the vocabulary does not belong to these weights")
        model.vocab = vocab
    return model


# ----------------------------------------------------------------------------- building blocks

_STACKS = {"lstm": LSTM, "gru": GRU, "rnn": RNN, "leaky": LeakyRNN}


def build_recurrent(input_size: int, cell: str = "lstm", hidden_size: int = 128, num_layers: int = 1,
                    bidirectional: bool = False, **options: Any) -> Recurrent:
    """A recurrent stack from a JSON spec: cell "lstm", "gru", "rnn" or "leaky", sizes, and the
    keyword options of :class:`rnnkit.Recurrent` and of the cell (layer_norm, activation, ...)."""
    if cell not in _STACKS:
        raise ValueError(f"cell must be one of {sorted(_STACKS)}. Received: {cell!r}")
    return _STACKS[cell](input_size, hidden_size, num_layers, bidirectional, **options)


class InputLayer(nn.Module):
    """Token ids through an embedding (``vocab_size`` given), or feature vectors as they are.

    word_dropout: in training, each token id is replaced by id 0 (the unknown word of
    :meth:`rnnkit.data.Vocabulary.from_words` and the task vocabularies) with this
    probability, so the unknown word's embedding learns what rare words look like."""

    def __init__(self, vocab_size: int | None, input_size: int | None, embedding_size: int,
                 word_dropout: float = 0.0) -> None:
        super().__init__()
        if (vocab_size is None) == (input_size is None):
            raise ValueError("give exactly one of vocab_size (token inputs) and input_size (feature inputs). "
                             f"Received: vocab_size={vocab_size}, input_size={input_size}")
        require(is_number(word_dropout) and 0 <= word_dropout < 1, "word_dropout", "in [0, 1)", word_dropout)
        if word_dropout and vocab_size is None:
            raise ValueError("word_dropout needs token inputs (vocab_size), not feature vectors")
        self.embedding = nn.Embedding(vocab_size, embedding_size) if vocab_size is not None else None
        self.size = embedding_size if vocab_size is not None else input_size
        self.word_dropout = float(word_dropout)

    def forward(self, x: Tensor) -> Tensor:
        if self.embedding is None:
            return x
        if self.training and self.word_dropout > 0:
            x = x.masked_fill(torch.rand(x.shape, device=x.device) < self.word_dropout, 0)
        return self.embedding(x)
