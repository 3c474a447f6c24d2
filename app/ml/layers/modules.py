"""Small nn.Modules for the layers PyTorch has no drop-in class for.

Each keeps the PyTorch module it wraps as a child, so state_dict keys stay readable
(``3.rnn.weight_ih_l0``, ``5.attn.in_proj_weight``) and a user can rebuild the model
from these classes (or copies of them) and load the job's weights.
"""
import torch
from torch import nn


class Reshape(nn.Module):
    """Reshapes each sample to ``shape`` (no batch dim; one -1 is inferred)."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)  # (batch, *shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class Recurrent(nn.Module):
    """An nn.RNN/LSTM/GRU over (batch, seq, features) that returns a tensor, not a tuple.

    output="sequence" returns every step, (batch, seq, hidden * directions).
    output="last" returns the final state of each direction, (batch, hidden * directions):
    the forward direction after the last step and the backward direction after the first
    step (its last), so both have read the whole sequence. Without bidirectional this is
    simply the last step's output.
    """

    def __init__(self, rnn: nn.RNNBase, output: str):
        super().__init__()
        self.rnn = rnn
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_meta:
            return self._meta_forward(x)
        out, _ = self.rnn(x)  # (batch, seq, hidden * directions)
        if self.output == "sequence":
            return out
        hidden = self.rnn.hidden_size
        if not self.rnn.bidirectional:
            return out[:, -1]  # (batch, hidden)
        return torch.cat([out[:, -1, :hidden], out[:, 0, hidden:]], dim=1)  # (batch, 2 * hidden)

    def _meta_forward(self, x: torch.Tensor) -> torch.Tensor:
        # On the meta device PyTorch runs an RNN as Python-level ops, step by step (about
        # 2 ms a step): too slow for the pre-flight of every request. The shape is known
        # without it; the sum keeps the autograd graph connected for the estimates.
        width = self.rnn.hidden_size * (2 if self.rnn.bidirectional else 1)
        shape = (x.shape[0], x.shape[1], width) if self.output == "sequence" else (x.shape[0], width)
        return (x.sum() * 0 + self.rnn.weight_hh_l0.sum() * 0).expand(shape)

    def training_cost(self, batch: int, seq: int) -> tuple[int, int]:
        """(FLOPs, activation bytes) of one training step, by formula (see _meta_forward).

        Forward: 2 FLOPs per multiply-add of the gate matrices, each step, each layer and
        direction; backward is counted as 2x forward. Memory: the float32 values PyTorch's
        CPU kernels keep for the backward, per sample, step, hidden unit, direction and
        layer (measured: about 20 for an LSTM, 11 for a GRU, 2 for an RNN).
        """
        rnn, dirs = self.rnn, 2 if self.rnn.bidirectional else 1
        kind = type(rnn).__name__
        gates = {"LSTM": 4, "GRU": 3}.get(kind, 1)
        forward = 0
        for layer in range(rnn.num_layers):
            inputs = rnn.input_size if layer == 0 else rnn.hidden_size * dirs
            forward += 2 * batch * seq * gates * rnn.hidden_size * (inputs + rnn.hidden_size) * dirs
        kept = {"LSTM": 20, "GRU": 11}.get(kind, 2)
        saved = 4 * batch * seq * kept * rnn.hidden_size * dirs * rnn.num_layers
        return 3 * forward, saved

    def extra_repr(self) -> str:
        return f"output={self.output!r}"


class TokenEmbedding(nn.Embedding):
    """nn.Embedding that takes token ids stored as floats, as every uploaded dataset is (float32).

    Ids are truncated to integers (2.0 -> 2). Its weights are ``weight``, exactly an
    nn.Embedding's.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = x.long()  # (batch, ...) -> (batch, ..., embedding_dim)
        try:
            return super().forward(ids)
        except IndexError:
            # PyTorch says only "index out of range in self"; say which ids and what is allowed.
            lo, hi = int(ids.min()), int(ids.max())
            raise IndexError(f"embedding got token ids from {lo} to {hi}, but num_embeddings="
                             f"{self.num_embeddings} allows only 0..{self.num_embeddings - 1}; "
                             "raise num_embeddings or re-number the tokens") from None


class SelfAttention(nn.Module):
    """Multi-head self-attention (query = key = value = x) over (batch, seq, embed)."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float, bias: bool):
        super().__init__()
        self.attn = nn.MultiheadAttention(embed_dim, num_heads, dropout=dropout, bias=bias,
                                          batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.attn(x, x, x, need_weights=False)  # (batch, seq, embed)
        return out
