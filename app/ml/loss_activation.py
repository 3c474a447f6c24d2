"""The softmax trap: the activation that feeds the loss, checked against what the loss applies itself.

A Keras habit (Dense(10, softmax) + categorical cross-entropy) carried over to a loss that takes
logits applies the activation twice; nll after a softmax trains on -p. The check walks back over
the parameter-free layers that keep the values' meaning (dropout, identity, flatten, reshape) to
the activation that really feeds the loss.
"""
from app.ml import spec as S
from app.ml.errors import SpecError

# No weights, and probabilities in give (rescaled or reshaped) probabilities out.
PASS_THROUGH = ("dropout", "identity", "flatten", "reshape")
OUTPUT_ACTIVATIONS = ("softmax", "log_softmax", "sigmoid")

_OUTPUTS_IN_0_1 = ("every output is in (0, 1), so the sigmoid bce_with_logits applies gives more than "
                   "0.5 and every label is predicted 1")

_SQUEEZED = "cross_entropy applies log-softmax itself, so the logits are squeezed into (0, 1) and training is slow"

# (loss, activation) -> (refused, why, the one-line fix). Pairs left out train as meant:
# log_softmax before cross_entropy is exact (log_softmax of log-probabilities changes nothing).
RULES = {
    ("cross_entropy", "softmax"): (False, _SQUEEZED, "drop the softmax: cross_entropy takes logits"),
    ("cross_entropy", "sigmoid"): (False, _SQUEEZED, "drop the sigmoid: cross_entropy takes logits"),
    ("nll", "softmax"): (True, "nll takes log-probabilities, but softmax gives probabilities: nll "
                         "trains on -p and the loss goes negative",
                         "use log_softmax with nll (or drop the softmax and use cross_entropy)"),
    ("nll", "sigmoid"): (True, "nll takes log-probabilities, but sigmoid gives values in (0, 1): nll "
                         "trains on -p and the loss goes negative",
                         "use log_softmax with nll (or drop the sigmoid and use cross_entropy)"),
    ("bce_with_logits", "softmax"): (True, _OUTPUTS_IN_0_1, "drop the softmax: bce_with_logits takes logits"),
    ("bce_with_logits", "sigmoid"): (True, _OUTPUTS_IN_0_1, "drop the sigmoid: bce_with_logits takes logits"),
    ("bce_with_logits", "log_softmax"): (True, "every output is at most 0, so the sigmoid "
                                         "bce_with_logits applies gives at most 0.5 and no label is "
                                         "predicted 1", "drop the log_softmax: bce_with_logits takes logits"),
}


def feeding_activation(layers: list) -> tuple[int, str] | None:
    """(index, type) of the activation whose output reaches the loss through pass-through layers."""
    for index in range(len(layers) - 1, -1, -1):
        kind = layers[index].type
        if kind in OUTPUT_ACTIVATIONS:
            return index, kind
        if kind not in PASS_THROUGH:
            return None
    return None


def check_loss_activation(spec: S.JobSpec) -> list[str]:
    """Raises SpecError for an activation that stops the loss training; returns warnings."""
    found = feeding_activation(spec.model.layers)
    if found is None:
        if spec.loss.type == "nll":
            return ["loss nll expects log-probabilities: end the network with a log_softmax layer "
                    "(or use cross_entropy on logits)"]
        return []
    index, kind = found
    rule = RULES.get((spec.loss.type, kind))
    if rule is None:
        return []
    refused, why, fix = rule
    field = f"model.layers[{index}]"
    if refused:
        raise SpecError(field, f"{kind} before {spec.loss.type}: {why}; {fix}")
    return [f"{field} is {kind} before {spec.loss.type}: {why}; {fix}"]
