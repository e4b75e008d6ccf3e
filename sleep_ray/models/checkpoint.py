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
from sleep_ray.models.build import DTYPES

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


def cast_weights(ckpt_dir: str | Path, dtype: str) -> bool:
    """Rewrite an HF directory's weights in `dtype` ("float32", "bfloat16", "float16"), in place: every
    floating-point tensor of its safetensors files, and config.json's `dtype` (and `torch_dtype`, where present).
    A sleep trains on float32 master weights and exports in `model.dtype` this way. Returns whether a tensor
    changed; raises FileNotFoundError for a directory without safetensors weights."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    target, path = DTYPES[dtype], Path(ckpt_dir)
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{path} holds no safetensors weights to cast to {dtype}")
    changed, total = False, 0
    for file in files:
        with safe_open(str(file), "pt") as f:
            metadata = f.metadata()
        tensors = load_file(str(file))
        cast = {k: t.to(target) if t.is_floating_point() else t for k, t in tensors.items()}
        total += sum(t.numel() * t.element_size() for t in cast.values())
        if any(t.dtype != tensors[k].dtype for k, t in cast.items()):
            save_file(cast, str(file), metadata=metadata)
            changed = True
    index = path / "model.safetensors.index.json"
    if changed and index.is_file():
        data = json.loads(index.read_text())
        data.setdefault("metadata", {})["total_size"] = total
        index.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    config = path / "config.json"
    conf = json.loads(config.read_text())
    keys = [k for k in ("dtype", "torch_dtype") if k in conf] or ["dtype"]
    if any(conf.get(k) != dtype for k in keys):
        conf.update(dict.fromkeys(keys, dtype))
        config.write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")
    return changed
