"""Recursive (tree) networks: the chain of a recurrent net generalised to a tree (Deep Learning, 10.6).

Every node j of a tree gets a state from its input x_j (a leaf's word; zero for an inner node
of a constituency tree) and its children's states; a tree of n leaves is composed in depth
O(log n) for a balanced tree, where a chain needs n steps. The node functions
(*compositions*), for children k = 1..A with states (h_k, c_k) (a missing child: zeros):

* ``recursive`` (Socher et al. 2011):  h_j = tanh(W x_j + U [h_1; ...; h_A] + b)
* ``treelstm`` — the N-ary Tree-LSTM of Tai et al. (2015), for ordered children (binary
  constituency trees: A = 2); each child position has its own weights and its own forget gate:

      i_j = sigma(W_i x_j + sum_l U_il h_l + b_i)      o_j = sigma(W_o x_j + sum_l U_ol h_l + b_o)
      u_j = tanh (W_u x_j + sum_l U_ul h_l + b_u)      f_jk = sigma(W_f x_j + sum_l U_fkl h_l + b_f)
      c_j = i_j * u_j + sum_k f_jk * c_k               h_j = o_j * tanh(c_j)

* ``childsum`` — the child-sum Tree-LSTM (Tai et al. 2015), for any number of unordered
  children: with h~_j = sum_k h_k, the gates i, o, u read U h~_j, and each child its own
  forget gate f_jk = sigma(W_f x_j + U_f h_k + b_f); c_j and h_j as above.

:class:`TreeEncoder` computes every node of a batch of trees *level by level*: the nodes of
one height (1 for leaves) across all trees of the batch are composed in one matrix product,
so a batch costs O(height) steps, not O(nodes). The layout it reads is
:func:`rnnkit.data.trees.flatten` 's. :class:`TreeClassifier` puts y_j = softmax(V h_j + c)
on every node, trained on every labelled node (phrase labels) or on the root only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.checks import require
from rnnkit.data.batching import Batch
from rnnkit.data.trees import Tree, flatten, right_branching
from rnnkit.models.base import Loss, Model, check_labels

__all__ = ["COMPOSITIONS", "Recursive", "NaryTreeLSTM", "ChildSumTreeLSTM", "TreeEncoder", "TreeClassifier",
           "TreeClassifierConfig"]


class Recursive(nn.Module):
    """h_j = tanh(W x_j + U [h_1; ...; h_A] + b): the plain recursive net; the state is h."""

    def __init__(self, input_size: int, hidden_size: int, arity: int = 2) -> None:
        super().__init__()
        self.hidden_size, self.state_size, self.arity = hidden_size, hidden_size, arity
        self.W = nn.Linear(input_size, hidden_size)
        self.U = nn.Linear(arity * hidden_size, hidden_size, bias=False)

    def project(self, x: Tensor) -> Tensor:
        """W x + b of every node at once (the part that does not wait for the children)."""
        return self.W(x)

    def forward(self, wx: Tensor, children: Tensor) -> Tensor:
        """wx (n, G) from :meth:`project`; children (n, A, state_size) -> states (n, state_size)."""
        return torch.tanh(wx + self.U(children.flatten(1)))


class NaryTreeLSTM(nn.Module):
    """The N-ary Tree-LSTM (see the module docstring); the state is [h; c], A = ``arity`` ordered children."""

    def __init__(self, input_size: int, hidden_size: int, arity: int = 2) -> None:
        super().__init__()
        H = hidden_size
        self.hidden_size, self.state_size, self.arity = H, 2 * H, arity
        self.W = nn.Linear(input_size, (3 + arity) * H)  # rows: i, o, u, f_1..f_A
        self.U = nn.Linear(arity * H, (3 + arity) * H, bias=False)
        with torch.no_grad():
            self.W.bias[3 * H:] = 1.0  # forget gates start open

    def project(self, x: Tensor) -> Tensor:
        return self.W(x)

    def forward(self, wx: Tensor, children: Tensor) -> Tensor:
        H, A = self.hidden_size, self.arity
        h, c = children[..., :H], children[..., H:]
        gates = wx + self.U(h.flatten(1))
        i, o, u = gates[:, :H].sigmoid(), gates[:, H:2 * H].sigmoid(), gates[:, 2 * H:3 * H].tanh()
        f = gates[:, 3 * H:].view(-1, A, H).sigmoid()
        c_j = i * u + (f * c).sum(1)
        return torch.cat([o * c_j.tanh(), c_j], 1)


class ChildSumTreeLSTM(nn.Module):
    """The child-sum Tree-LSTM (see the module docstring); the state is [h; c], any number of children."""

    def __init__(self, input_size: int, hidden_size: int, arity: int | None = None) -> None:
        super().__init__()
        H = hidden_size
        self.hidden_size, self.state_size, self.arity = H, 2 * H, None
        self.W = nn.Linear(input_size, 4 * H)  # rows: i, o, u, f
        self.U_iou = nn.Linear(H, 3 * H, bias=False)
        self.U_f = nn.Linear(H, H, bias=False)
        with torch.no_grad():
            self.W.bias[3 * H:] = 1.0

    def project(self, x: Tensor) -> Tensor:
        return self.W(x)

    def forward(self, wx: Tensor, children: Tensor) -> Tensor:
        H = self.hidden_size
        h, c = children[..., :H], children[..., H:]
        iou = wx[:, :3 * H] + self.U_iou(h.sum(1))
        i, o, u = iou[:, :H].sigmoid(), iou[:, H:2 * H].sigmoid(), iou[:, 2 * H:].tanh()
        f = (wx[:, None, 3 * H:] + self.U_f(h)).sigmoid()  # one forget gate per child
        c_j = i * u + (f * c).sum(1)  # a missing child's c is 0: it adds nothing
        return torch.cat([o * c_j.tanh(), c_j], 1)


COMPOSITIONS: dict[str, Callable[..., nn.Module]] = {
    "recursive": Recursive, "treelstm": NaryTreeLSTM, "childsum": ChildSumTreeLSTM}


class TreeEncoder(nn.Module):
    """Every node's state for a batch of trees in :func:`rnnkit.data.trees.flatten` 's layout,
    one composition per height level (the nodes of all trees that share a height in one product)."""

    def __init__(self, composition: nn.Module) -> None:
        super().__init__()
        self.composition = composition

    def forward(self, x: Tensor, children: Tensor, level_sizes: Sequence[int]) -> Tensor:
        """x (N, I) every node's input (zero rows where a node has none); children (N, A) each
        child's node index + 1 (0: no child, read as a zero state); level_sizes: nodes per
        height, the nodes ordered by height. Returns the states (N, state_size)."""
        wx = self.composition.project(x)
        states = [x.new_zeros(1, self.composition.state_size)]  # row 0: the missing child
        start = 0
        for n in level_sizes:
            below = torch.cat(states) if len(states) > 1 else states[0]
            states.append(self.composition(wx[start:start + n], below[children[start:start + n]]))
            start += n
        return torch.cat(states[1:])


@dataclass
class TreeClassifierConfig:
    """num_classes: K. vocab_size, embedding_size: the leaves' word embeddings. hidden_size: H.
    composition: "recursive", "treelstm" (N-ary, ordered children) or "childsum". arity: the
    children a node may have (recursive and treelstm; childsum takes any number). everywhere:
    train on every labelled node (phrase labels), not only the root. dropout: on the word
    embeddings and on h before the output. labels: the K class names."""

    num_classes: int
    vocab_size: int
    embedding_size: int = 100
    hidden_size: int = 150
    composition: str = "treelstm"
    arity: int = 2
    everywhere: bool = True
    dropout: float = 0.0
    labels: list | None = None


class TreeClassifier(Model):
    """y_j = softmax(V h_j + c) at every node of a tree; the tree's class is y at its root.

    DIV = mean over the labelled nodes j of Xent(label_j, y_j) (``everywhere``), or Xent at the
    root only. Out of training (``model.eval()``) the loss is always the root's, so models
    trained either way are compared on one measure. Batches: :meth:`batch` (the layout of
    :func:`rnnkit.data.trees.flatten`)."""

    Config = TreeClassifierConfig

    def __init__(self, config: TreeClassifierConfig) -> None:
        super().__init__(config)
        c = config
        require(c.composition in COMPOSITIONS, "TreeClassifierConfig.composition", f"one of {sorted(COMPOSITIONS)}",
                c.composition)
        require(isinstance(c.arity, int) and c.arity >= 1, "TreeClassifierConfig.arity", "an integer >= 1", c.arity)
        check_labels(c, c.num_classes, "class")
        self.embedding = nn.Embedding(c.vocab_size + 1, c.embedding_size, padding_idx=c.vocab_size)  # last: no word
        self.encoder = TreeEncoder(COMPOSITIONS[c.composition](c.embedding_size, c.hidden_size, c.arity))
        self.drop = nn.Dropout(c.dropout)
        self.output = nn.Linear(c.hidden_size, c.num_classes)

    def forward(self, batch: Batch) -> Tensor:
        """Logits (N, K) of every node of the batch."""
        words = batch["words"]
        x = self.drop(self.embedding(torch.where(words < 0, self.config.vocab_size, words)))
        states = self.encoder(x, batch["children"], batch["level_sizes"].tolist())
        return self.output(self.drop(states[:, :self.config.hidden_size]))

    def loss(self, batch: Batch, state: Any = None, teacher_forcing: float = 1.0) -> Loss:
        logits, target = self(batch), batch["target"]
        if not (self.config.everywhere and self.training):
            logits, target = logits[batch["roots"]], target[batch["roots"]]
        labelled = target >= 0
        count = int(labelled.sum())
        value = F.cross_entropy(logits[labelled], target[labelled]) if count else logits.sum() * 0.0
        correct = float((logits[labelled].argmax(-1) == target[labelled]).sum())
        return Loss(value, max(count, 1), None, {"correct": correct})

    def batch(self, trees: Sequence[Tree], label: Callable[[Tree], int | None] = lambda node: None) -> Batch:
        """A batch of trees: words in :attr:`vocab` (unknown ones as its unknown word), each
        node's class ``label(node)`` (None: unlabelled)."""
        if self.vocab is None:
            raise ValueError("this TreeClassifier has no vocabulary (model.vocab): it cannot read words")
        vocab = self.vocab
        return flatten(trees, lambda words: vocab.encode_sentences([words])[0][0].tolist(), label,
                       arity=None if self.config.composition == "childsum" else self.config.arity)

    @torch.no_grad()
    def predict(self, batch: Batch) -> Tensor:
        """The class of each tree (its root), (B,)."""
        return self(batch)[batch["roots"]].argmax(-1)

    @torch.no_grad()
    def classify(self, sentences: Sequence[Tree | Sequence[str]]) -> list[dict[str, float]]:
        """P(class | tree) of each parse tree, by class name; a list of words is read as the
        right-branching binary tree over them (:func:`rnnkit.data.trees.right_branching`)."""
        names = self.config.labels or [str(k) for k in range(self.config.num_classes)]
        trees = [s if isinstance(s, Tree) else right_branching(s) for s in sentences]
        was_training = self.training
        self.eval()
        b = {k: v.to(self.output.weight.device) for k, v in self.batch(trees).items()}
        probabilities = self(b)[b["roots"]].softmax(-1).tolist()
        self.train(was_training)
        return [dict(zip(names, row)) for row in probabilities]
