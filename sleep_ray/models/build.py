"""Build the wake model: a Llama-architecture causal LM from config, or a local Hugging Face checkpoint.

model = build_model(cfg.model, tokenizer)          # tiny, random init, from numbers
model, tokenizer = load_pretrained("runs/base")    # any local HF directory (ours or a real checkpoint)
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from sleep_ray.config import ModelConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def llama_config(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> LlamaConfig:
    """The Hugging Face config for a tiny Llama whose vocabulary is `tokenizer`'s."""
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.hidden_size // cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        tie_word_embeddings=cfg.tie_word_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_model(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> LlamaForCausalLM:
    """A randomly initialised Llama sized by `cfg`, deterministic for a given seed."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(cfg, tokenizer))
    return model.to(DTYPES[cfg.dtype])  # type: ignore[arg-type]


def default_device() -> str:
    """ "cuda" where this process may use a GPU, else "cpu". A Ray actor or task that asked for no GPU gets the CPU
    even on a GPU node (Ray hands it no GPU ids), so roles sized for CPUs never crowd a GPU."""
    if not torch.cuda.is_available():
        return "cpu"
    import ray

    if ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE and not ray.get_gpu_ids():
        return "cpu"
    return "cuda"


def load_pretrained(
    path: str | Path, dtype: str = "float32", device: str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load model and tokenizer from a local directory with plain `transformers` (no hub access), on `device`
    (default: `default_device()`) in `dtype` (model.dtype: bfloat16 on GPUs)."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a Hugging Face checkpoint directory (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=DTYPES[dtype])
    model.to(device or default_device())  # type: ignore[arg-type]
    model.eval()
    return model, tokenizer


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
