"""Decoding: CTC (greedy, prefix beam search with lexicon, LMs, hotwords) and generation.

Decoders are functions of log-probabilities plus optional scorer objects (the CTC beam
search also as an object built once, :class:`CTCBeamDecoder`); they know nothing about models. Autoregressive generation asks a model for
``step(tokens (B,), state) -> (log_probs (B, C), state)``.
"""

from rnnkit.decode.ctc_beam import BeamSearchOptions, CTCBeamDecoder, ctc_beam_search
from rnnkit.decode.ensemble import ctc_ensemble
from rnnkit.decode.greedy import ctc_greedy
from rnnkit.decode.hypothesis import Hypothesis
from rnnkit.decode.lm_scorer import NGramLM, RNNLMScorer
from rnnkit.decode.sampling import filter_log_probs, generate
from rnnkit.decode.scorers import Hotwords, Lexicon, Scorer, TextLM
from rnnkit.decode.seq_beam import beam_search
from rnnkit.decode.stopping import StopAtLength, StopOnHalt, StopOnToken, StopPolicy

__all__ = ["Hypothesis", "ctc_greedy", "ctc_beam_search", "ctc_ensemble", "CTCBeamDecoder", "BeamSearchOptions",
           "Lexicon", "Hotwords", "NGramLM", "RNNLMScorer", "Scorer", "TextLM", "generate", "beam_search",
           "filter_log_probs", "StopPolicy", "StopOnToken", "StopOnHalt", "StopAtLength"]
