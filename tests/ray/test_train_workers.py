"""One Ray Train worker or two, the same step: the student's loss is a per-sequence mean, so two DDP workers
each taking half of a global batch (gloo averages their gradients) must give the loss and the updated expert
that one worker gives on the whole batch."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from sleep_ray.config import load_config
from sleep_ray.roles.student import load_student, prepare_trainable, trainable_arrays
from sleep_ray.runtime.export import grow_student
from tests.helpers import BASE, fixed_batch


def _one_step(config: dict) -> None:
    """A Ray Train worker: its contiguous share of the batch, one SGD step through DDP; rank 0 saves the loss
    (averaged over ranks) and the trained tensors."""
    import ray.train
    import ray.train.torch
    import torch
    import torch.distributed as dist

    from sleep_ray.roles.student import distill_loss, load_student, prepare_trainable, trainable_arrays

    torch.manual_seed(0)
    torch.set_num_threads(1)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    model, tokenizer, record = load_student(config["init"])
    optimizer = torch.optim.SGD(prepare_trainable(model, record), lr=0.5)
    ddp = ray.train.torch.prepare_model(model)
    items, completions, teacher = config["batch"]
    size = len(items) // world
    mine = slice(rank * size, (rank + 1) * size)
    loss = distill_loss(ddp, tokenizer, items[mine], completions[mine], teacher[mine], config["seeding"])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    mean = loss.detach().clone()
    if world > 1:
        dist.all_reduce(mean)
        mean /= world
    if rank == 0:
        np.savez(config["out"], loss=mean.numpy(), **trainable_arrays(model))
    ray.train.report({"loss": float(mean)})


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_one_and_two_train_workers_give_the_same_loss_and_step_on_the_same_global_batch(ray_cluster, tmp_path):
    import ray.cloudpickle
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers need not import tests/
    cfg = load_config(None, [f"run_dir={tmp_path}", "sleep.growth.d_low=8"])
    grow_student(cfg, BASE, tmp_path / "init", cycle=1)
    batch = fixed_batch()
    saved = {}
    for workers in (1, 2):
        out = tmp_path / f"workers-{workers}.npz"
        trainer = TorchTrainer(
            _one_step,
            train_loop_config={
                "init": str(tmp_path / "init"),
                "batch": batch,
                "seeding": cfg.sleep.seeding,
                "out": str(out),
            },
            scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": 0.5}),
            torch_config=TorchConfig(backend="gloo"),
            run_config=RunConfig(name=f"workers-{workers}", storage_path=str(tmp_path / "ray")),
        )
        trainer.fit()
        saved[workers] = dict(np.load(out))
    one, two = saved[1], saved[2]
    assert set(one) == set(two) and len(one) > 1
    assert float(two["loss"]) == pytest.approx(float(one["loss"]), rel=1e-5)
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-5, atol=1e-6, err_msg=name)
    grown, _, record = load_student(tmp_path / "init")
    prepare_trainable(grown, record)
    start = trainable_arrays(grown)
    assert any(not np.allclose(start[name], one[name]) for name in start)  # the step moved the expert
