"""A Ray Train `fit()` with a deadline that ends the whole run, not just the wait for it.

    deadline = FitDeadline(cfg.resources.fit_timeout_s)
    trainer = TorchTrainer(..., run_config=RunConfig(..., callbacks=[deadline]))
    result = deadline.fit(trainer)  # raises RoleTimeoutError once the deadline has passed

Ray Train runs a fit in a controller actor (on the driver's node) that starts and watches the worker group.
`FitDeadline` is a controller callback: in the controller a timer waits for the deadline (wall-clock time, set
when `fit` is called), then calls the controller's own `abort()` (what Ray does on Ctrl-C: the workers are
killed, the placement group removed, the controller exits) and kills the controller if it is still there
`grace_s` later (a controller busy starting workers cannot run `abort()`; its workers die with it). In the
driver, `fit` runs `trainer.fit()` in a daemon thread, so a process whose fit timed out can always exit, and
raises `RoleTimeoutError` once the run has stopped (waiting at most `grace_s` + `STOP_WAIT_S` past the deadline
for that: a loaded node can take that long to start the controller process that ends the run).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import ray
from ray.train.v2._internal.execution.callback import ControllerCallback

from sleep_ray.config import Config, SeedingConfig
from sleep_ray.records import ImitationItem, RoleTimeoutError, Rollout, SeedPrompt
from sleep_ray.roles.train_loop import LoopArgs, train_loop
from sleep_ray.runtime.resources import ray_resources

log = logging.getLogger(__name__)
STOP_WAIT_S = 30.0


class FitDeadline(ControllerCallback):
    """Ends a Ray Train run still going `timeout_s` after `fit` was called (see the module docstring)."""

    def __init__(self, timeout_s: float, grace_s: float = 10.0):
        self.timeout_s = float(timeout_s)
        self.grace_s = float(grace_s)
        self._deadline: float | None = None  # time.time() at which the run is ended; set by `fit`
        self._finished: threading.Event | None = None  # controller side only (created there)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_finished": None}  # the run config (with its callbacks) travels to the workers

    # --- in the Ray Train controller ---

    def after_controller_start(self, train_run_context: Any) -> None:
        self._finished = threading.Event()
        threading.Thread(target=self._watch, name="fit-deadline", daemon=True).start()

    def after_controller_finish(self, result: Any) -> None:
        if self._finished is not None:
            self._finished.set()

    def _watch(self) -> None:
        assert self._finished is not None
        left = self.timeout_s if self._deadline is None else self._deadline - time.time()
        if self._finished.wait(max(0.0, left)):
            return
        me = ray.get_runtime_context().current_actor
        log.warning("Ray Train run still going after %g s (resources.fit_timeout_s): aborting it", self.timeout_s)
        me.abort.remote()  # ends this process, unless the run has just finished (abort leaves that alone)
        if not self._finished.wait(self.grace_s):
            log.warning("Ray Train controller did not abort within %g s: killing it and its workers", self.grace_s)
            ray.kill(me, no_restart=True)

    # --- in the driver ---

    def fit(self, trainer: Any) -> Any:
        """`trainer.fit()` (whose run_config holds this callback); raises RoleTimeoutError after `timeout_s`."""
        self._deadline = time.time() + self.timeout_s  # before fit() hands this callback to the controller
        box: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                box["result"] = trainer.fit()
            except BaseException as e:  # handed to the caller below
                box["error"] = e
            finally:
                done.set()

        threading.Thread(target=run, name="ray-train-fit", daemon=True).start()
        if done.wait(self.timeout_s):
            if "error" in box:
                raise box["error"]
            return box["result"]
        stopped = done.wait(self.grace_s + STOP_WAIT_S)  # the controller ends the run at the same deadline
        raise RoleTimeoutError(
            f"Ray Train fit() did not finish within {self.timeout_s:g} s (resources.fit_timeout_s); check that the "
            "cluster has resources.train_workers x resources.trainer free"
            + ("" if stopped else f"; the run had not stopped {self.grace_s + STOP_WAIT_S:g} s later")
        )


def train_student(
    cfg: Config,
    s: SeedingConfig,
    *,
    work: Path,
    logs: Path,
    actors: tuple[list[Any], Any, list[Any]],
    items: list[SeedPrompt],
    pool: list[list[Rollout]],
    imitation: list[ImitationItem],
    seed: int,
) -> Any:
    """Run the student's Ray Train loop (`roles/train_loop.py`) from `<work>/init` with the role actors
    (teachers, critic, engines) under `resources.fit_timeout_s`; returns the Ray Train result (None when `s.steps`
    is 0). Both sleep stages train through it. Rerunning with the same `work` resumes from its last checkpoint."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    r = cfg.resources
    use_gpu = r.trainer.gpus > 0
    teachers, critic, engines = actors
    storage = (work / "ray").resolve()  # Ray Train resumes a run of the same name from its last checkpoint
    deadline = FitDeadline(r.fit_timeout_s)  # a run still going then is aborted and the sleep fails
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={
            "args": LoopArgs(
                seeding=s,
                seed=seed,
                threads=r.threads_per_process,
                dtype=cfg.model.dtype,
                timeout_s=r.call_timeout_s,
                teachers=teachers,
                critic=critic,
                engines=engines,
                items=items,
                teacher_pool=pool,
                imitation=imitation,
                init=str((work / "init").resolve()),
                log_dir=str(logs.resolve()),
            )
        },
        scaling_config=ScalingConfig(
            num_workers=r.train_workers,
            use_gpu=use_gpu,
            resources_per_worker=ray_resources(r.trainer) or {"CPU": 0.01},
        ),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=RunConfig(
            name="train",
            storage_path=str(storage),
            checkpoint_config=CheckpointConfig(num_to_keep=1),
            # a dead worker: Ray Train restarts the group, which resumes from the last checkpoint
            failure_config=FailureConfig(max_failures=r.train_max_failures),
            callbacks=[deadline],  # type: ignore[list-item]  # typed as Ray Train v1's (Tune callbacks)
        ),
    )
    return deadline.fit(trainer) if s.steps else None
