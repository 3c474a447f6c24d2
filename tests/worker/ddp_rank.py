"""A test's data parallel rank (python -m tests.worker.ddp_rank SPEC DATA OUT): trains the spec's Trainer as
one of the launcher's ranks; rank 0 writes every metric point and the trained weights to OUT."""
import json
import sys

import numpy as np
import torch
from safetensors.torch import save_file

from app.ml.spec import JobSpec
from worker.training import Hooks, Trainer, resolve_device
from worker.training.distributed import Ranks


def main(spec_file: str, data_file: str, out: str) -> None:
    spec = JobSpec.model_validate_json(open(spec_file).read())
    arrays = np.load(data_file)
    ranks = Ranks.join(resolve_device(spec.training.device).type)
    points: list[dict] = []
    hooks = Hooks(flush=lambda p, e, s: points.extend(p), flush_seconds=0) if ranks.leader else Hooks()
    trainer = Trainer(spec, arrays["x"], arrays["y"], ranks.device, hooks, ranks=ranks)
    result = trainer.run()
    if ranks.leader:
        save_file({k: v.contiguous() for k, v in result.model.state_dict().items()}, out + ".safetensors")
        with open(out, "w") as f:
            json.dump([{k: float(v) if isinstance(v, torch.Tensor) else v for k, v in p.items()} for p in points], f)
    ranks.leave()


if __name__ == "__main__":
    main(*sys.argv[1:])
