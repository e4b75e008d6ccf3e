"""Batched generation with a Hugging Face model: the core of the HF rollout engine and of evaluation.

texts = complete(model, tokenizer, ["Question: Where does Ana Vel live?\nAnswer:"], max_new_tokens=8)
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


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

    Prompts are left-padded so all rows end at the same position. A prompt longer than
    `max_prompt_tokens` (default: the model's window minus `max_new_tokens`) keeps its last tokens.
    """
    window = getattr(model.config, "max_position_embeddings", 2048)
    limit = max_prompt_tokens or max(1, window - max_new_tokens)
    was_training = model.training
    model.eval()
    out: list[str] = []
    tokenizer.truncation_side = "left"  # a too-long prompt keeps its end, where the question is
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        enc = tokenizer(chunk, return_tensors="pt", padding=True, truncation=True, max_length=limit)
        kwargs: dict = {"do_sample": do_sample, "max_new_tokens": max_new_tokens}
        kwargs["pad_token_id"] = tokenizer.pad_token_id
        if do_sample:
            kwargs.update(temperature=temperature, top_k=top_k or None)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        ids = model.generate(**enc.to(model.device), **kwargs)  # type: ignore[operator]
        new = ids[:, enc["input_ids"].shape[1] :]
        out.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    model.train(was_training)
    return out
