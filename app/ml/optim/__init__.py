"""Trainyard's own optimizers, for the methods torch.optim lacks: Newton, Levenberg-Marquardt,
nonlinear conjugate gradient and scaled conjugate gradient. Each is a torch.optim.Optimizer
whose state is in ``self.state`` / ``param_groups`` (so checkpoints and rollbacks keep it).
"""
