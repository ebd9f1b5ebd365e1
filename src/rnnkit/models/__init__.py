"""The taxonomy of recurrent architectures as models (see each module)."""

from rnnkit.models.attention import Attention
from rnnkit.models.base import Loss, Model, build_recurrent, load
from rnnkit.models.classifier import SequenceClassifier, SequenceClassifierConfig
from rnnkit.models.bits import RecurrentBits, RecurrentBitsConfig
from rnnkit.models.ctc import CTCRecognizer, CTCRecognizerConfig
from rnnkit.models.embeddings import WordEmbeddings, WordEmbeddingsConfig, copy_vectors
from rnnkit.models.jordan import OutputRecurrentNet, OutputRecurrentNetConfig
from rnnkit.models.lm import LanguageModel, LanguageModelConfig
from rnnkit.models.ntm import NeuralTuringMachine, NeuralTuringMachineConfig
from rnnkit.models.recursive import (ChildSumTreeLSTM, NaryTreeLSTM, Recursive, TreeClassifier,
                                     TreeClassifierConfig, TreeEncoder)
from rnnkit.models.regressor import SequenceRegressor, SequenceRegressorConfig
from rnnkit.models.seq2seq import Seq2Seq, Seq2SeqConfig
from rnnkit.models.tagger import Tagger, TaggerConfig
from rnnkit.models.tdnn import TDNN, NeuralProbabilisticLM, NeuralProbabilisticLMConfig
from rnnkit.models.vec2seq import ConditionalGenerator, ConditionalGeneratorConfig

__all__ = [
    "Model", "Loss", "load", "build_recurrent", "Attention", "TDNN",
    "LanguageModel", "LanguageModelConfig", "NeuralProbabilisticLM", "NeuralProbabilisticLMConfig",
    "Tagger", "TaggerConfig", "SequenceRegressor", "SequenceRegressorConfig", "WordEmbeddings",
    "WordEmbeddingsConfig", "copy_vectors", "SequenceClassifier", "SequenceClassifierConfig",
    "CTCRecognizer", "CTCRecognizerConfig", "Seq2Seq", "Seq2SeqConfig",
    "OutputRecurrentNet", "OutputRecurrentNetConfig", "ConditionalGenerator", "ConditionalGeneratorConfig",
    "Recursive", "NaryTreeLSTM", "ChildSumTreeLSTM", "TreeEncoder", "TreeClassifier", "TreeClassifierConfig",
    "NeuralTuringMachine", "NeuralTuringMachineConfig", "RecurrentBits", "RecurrentBitsConfig",
]
