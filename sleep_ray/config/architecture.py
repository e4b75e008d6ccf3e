"""Which architectures the student's growth can widen, decided from a model's config alone (no model loaded).

Growth (`sleep_ray.models.growth`) adds hidden units to a bias-free gated MLP, `down(act(gate(x)) * up(x))`
with separate `gate_proj`/`up_proj`/`down_proj` matrices and one `intermediate_size` for every layer. The new
down columns start at zero, so the grown model computes exactly what the small one did for any activation;
the activation must still be one of the gated ones (silu or a gelu variant) those architectures use.

This module imports nothing heavy, so the config loader can refuse an unsupported `model.path` at load time:

    reason = growth_support(json.loads(Path(path, "config.json").read_text()))   # None: growth works
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PretrainedConfig

# model_type -> the config key naming the activation its MLP applies to gate (act(gate) * up)
SUPPORTED: dict[str, str] = {
    "gemma": "hidden_act",
    "gemma2": "hidden_activation",
    "llama": "hidden_act",
    "mistral": "hidden_act",
    "qwen2": "hidden_act",
    "qwen3": "hidden_act",
}
ACTIVATIONS = frozenset(
    {"silu", "swish", "gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "gelu_python", "gelu_accurate"}
)
# known architectures growth refuses, with what their MLP has that growth does not handle
REFUSED: dict[str, str] = {
    "gpt2": "non-gated MLP with biases (c_fc/c_proj Conv1D)",
    "gpt_neox": "non-gated MLP with biases (dense_h_to_4h/dense_4h_to_h)",
    "gptj": "non-gated MLP with biases (fc_in/fc_out)",
    "opt": "non-gated MLP with biases (fc1/fc2)",
    "phi": "non-gated MLP with biases (fc1/fc2)",
    "phi3": "fused gate and up projection (gate_up_proj)",
    "falcon": "non-gated MLP (dense_h_to_4h/dense_4h_to_h)",
    "bloom": "non-gated MLP with biases (dense_h_to_4h/dense_4h_to_h)",
    "starcoder2": "non-gated MLP (c_fc/c_proj)",
    "mixtral": "mixture-of-experts MLP (block_sparse_moe)",
    "qwen2_moe": "mixture-of-experts MLP",
    "qwen3_moe": "mixture-of-experts MLP",
}
HINT = (
    "growth supports bias-free gated MLPs (gate_proj/up_proj/down_proj): "
    "set sleep.growth.enabled=false to train every weight instead"
)


class GrowthUnsupportedError(ValueError):
    """Growth cannot widen this model's MLPs exactly; the message names the architecture and the reason."""


def _get(config: Any, key: str) -> Any:
    """`config[key]` of a mapping (a config.json), else the attribute of a `PretrainedConfig`; None if absent."""
    if isinstance(config, Mapping):
        return config.get(key)
    return getattr(config, key, None)


def growth_support(config: PretrainedConfig | Mapping[str, Any]) -> str | None:
    """None when growth can widen a model of this config (a `PretrainedConfig` or a config.json mapping) exactly,
    else a one-line reason naming the architecture, what is unsupported, and the way out."""
    model_type = _get(config, "model_type") or "unknown"
    if model_type in REFUSED:
        return f"{model_type}: {REFUSED[model_type]}; {HINT}"
    if model_type not in SUPPORTED:
        known = ", ".join(sorted(SUPPORTED))
        return f"{model_type}: architecture not supported by growth (supported: {known}); {HINT}"
    width = _get(config, "intermediate_size")
    if isinstance(width, (list, tuple)):
        return f"{model_type}: intermediate_size given per layer ({list(width)}); {HINT}"
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        return f"{model_type}: intermediate_size={width!r} is not one positive int; {HINT}"
    if _get(config, "mlp_bias"):
        return f"{model_type}: MLP with biases (mlp_bias=true); {HINT}"
    key = SUPPORTED[model_type]
    other = "hidden_activation" if key == "hidden_act" else "hidden_act"
    act = _get(config, key) or _get(config, other)
    if act not in ACTIVATIONS:
        return f"{model_type}: MLP activation {key}={act!r} is not silu or a gelu variant; {HINT}"
    return None


def growth_support_at(path: str | Path) -> str | None:
    """`growth_support` of the config.json in directory `path`; None when there is no such file to judge."""
    file = Path(path) / "config.json"
    if not file.is_file():
        return None
    data = json.loads(file.read_text())
    if not isinstance(data, Mapping):
        return f"{file}: config.json is not a JSON object; {HINT}"
    return growth_support(data)
