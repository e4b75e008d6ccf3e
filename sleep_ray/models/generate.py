"""Batched generation with a Hugging Face model: the core of the HF rollout engine and of evaluation.

texts = complete(model, tokenizer, ["Question: Where does Ana Vel live?\nAnswer:"], max_new_tokens=8)
"""

from __future__ import annotations

import torch
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase


def sampling(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    max_new_tokens: int,
    *,
    do_sample: bool,
    temperature: float = 1.0,
    top_k: int = 0,
) -> GenerationConfig:
    """Exactly the sampling the caller asks for: greedy, or temperature with top-k (0 = none), no top-p, no
    repetition penalty. Only the stop and pad ids come from the checkpoint: a `generation_config.json` shipped
    with a model (top_p 0.8, a repetition penalty) never leaks in, so HF and vLLM engines sample alike."""
    own = getattr(model, "generation_config", None)
    eos = getattr(own, "eos_token_id", None)
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        temperature=temperature if do_sample else 1.0,
        top_k=top_k if do_sample else None,  # greedy ignores it
        top_p=1.0,
        repetition_penalty=1.0,  # explicit neutral values: an unset one falls back to the checkpoint's
        eos_token_id=eos if eos is not None else tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=getattr(own, "bos_token_id", None),
    )


@torch.no_grad()
def complete(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    max_new_tokens: int,
    *,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    batch_size: int = 32,
    max_prompt_tokens: int | None = None,
) -> list[str]:
    """Continue each prompt; returns the decoded new text only (special tokens dropped).

    Prompts are left-padded so all rows end at the same position, and batched in order of length (short with
    short: a batch pads to its longest prompt, and on a CPU the padding costs as much as the prompt); the
    results come back in the callers' order. A prompt longer than `max_prompt_tokens` (default: the model's
    window minus `max_new_tokens`) keeps its last tokens.
    """
    window = getattr(model.config, "max_position_embeddings", 2048)
    limit = max_prompt_tokens or max(1, window - max_new_tokens)
    was_training = model.training
    model.eval()
    out = [""] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # stable: equal prompts stay together
    tokenizer.truncation_side = "left"  # a too-long prompt keeps its end, where the question is
    settings = sampling(model, tokenizer, max_new_tokens, do_sample=do_sample, temperature=temperature, top_k=top_k)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        enc = tokenizer(
            [prompts[i] for i in rows], return_tensors="pt", padding=True, truncation=True, max_length=limit
        )
        ids = model.generate(**enc.to(model.device), generation_config=settings)  # type: ignore[operator]
        new = ids[:, enc["input_ids"].shape[1] :]
        for i, text in zip(rows, tokenizer.batch_decode(new, skip_special_tokens=True)):
            out[i] = text
    model.train(was_training)
    return out
