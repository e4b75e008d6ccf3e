"""Checkpoints are standard Hugging Face directories, plus two files of our own beside the weights.

    <dir>/config.json, model.safetensors, tokenizer.json, ...   loadable by AutoModelForCausalLM/AutoTokenizer
    <dir>/sleep_ray.json    CheckpointMeta: weight version, step, seed, what produced it
    <dir>/sleep_ray.yaml    the resolved run config that produced it

Writes go to a temporary sibling directory that is renamed into place, so a crash never leaves a
half-written checkpoint where a reader (Serve, resume) could find it.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleep_ray.config import to_yaml

META_FILE = "sleep_ray.json"
CONFIG_FILE = "sleep_ray.yaml"


@dataclass
class CheckpointMeta:
    """What produced a checkpoint. `version` is the weight version stamped on everything it serves."""

    version: int = 0
    step: int = 0
    seed: int = 0
    producer: str = ""  # "pretrain", "sleep", ...
    parent: str = ""  # the checkpoint this one was grown or trained from
    created: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    out_dir: str | Path,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    meta: CheckpointMeta,
    config: Any | None = None,
) -> Path:
    """Write an HF directory (safetensors) atomically; returns its path."""
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / META_FILE).write_text(json.dumps(asdict(meta), indent=2))
    if config is not None:
        (tmp / CONFIG_FILE).write_text(to_yaml(config))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def read_meta(ckpt_dir: str | Path) -> CheckpointMeta:
    """The checkpoint's meta; a plain HF directory (no sleep_ray.json) reads as version 0."""
    path = Path(ckpt_dir) / META_FILE
    if not path.is_file():
        return CheckpointMeta(created=0.0)
    return CheckpointMeta(**json.loads(path.read_text()))
