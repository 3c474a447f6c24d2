"""Predictions' probabilities: a softmax is applied to logits only, never again to probabilities."""
import torch
from torch import nn

from app.jobs.predict import predict

X = torch.tensor([[0.5, -1.0], [2.0, 0.3], [-0.7, 0.1]])


def net(*tail: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 3), *tail)


def test_logits_get_a_softmax():
    model = net()
    got = predict(model, X, "cross_entropy", None)
    assert torch.allclose(torch.tensor(got["probabilities"]), torch.softmax(model(X), dim=1))
    assert got["labels"] == model(X).argmax(dim=1).tolist()


def test_a_network_ending_in_softmax_gives_its_own_outputs_as_the_probabilities():
    model = net(nn.Softmax(dim=1), nn.Dropout(0.5)).eval()
    got = predict(model, X, "cross_entropy", None, activation="softmax")
    assert got["probabilities"] == got["outputs"]
    assert torch.allclose(torch.tensor(got["probabilities"]).sum(dim=1), torch.ones(3))
    # What it used to answer: a softmax of probabilities, flattened towards uniform.
    assert not torch.allclose(torch.tensor(got["probabilities"]), torch.softmax(model(X), dim=1))


def test_log_probabilities_are_exponentiated_for_nll_and_cross_entropy():
    model = net(nn.LogSoftmax(dim=1))
    for loss in ("nll", "cross_entropy"):
        got = predict(model, X, loss, ["a", "b", "c"], activation="log_softmax")
        assert torch.allclose(torch.tensor(got["probabilities"]), torch.softmax(net()(X), dim=1), atol=1e-6)
        assert got["labels"] == [["a", "b", "c"][i] for i in net()(X).argmax(dim=1).tolist()]
    assert "probabilities" not in predict(net(), X, "nll", None)  # nll on raw outputs: no probabilities to give
