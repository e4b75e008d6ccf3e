"""`model.dtype` end to end on the committed tiny model converted to bfloat16: growth, the student's init and the
exported checkpoint keep it (tensors and config.json; the student itself trains on float32 master weights), and
the inference roles (serving, the gate, eval, the dream roles) load in it."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open

from sleep_ray.config import GateConfig, load_config
from sleep_ray.data.schema import Memory
from sleep_ray.models import build
from sleep_ray.models.build import load_pretrained
from sleep_ray.models.checkpoint import CheckpointMeta, cast_weights, read_meta, save_checkpoint
from sleep_ray.roles.student import load_growth, load_student, save_growth
from sleep_ray.runtime.export import export_checkpoint, grow_student
from sleep_ray.wake.exchange import Sampling
from sleep_ray.wake.model import Generator, load_weights
from tests.helpers import HANDMADE, ROOT, TINY

TINY_BASE = ROOT / "examples" / "tiny_base"
D_LOW = 16
PROMPTS = ["Question: Where does Ana Vel live?\nAnswer:", "Ana Vel lives in"]


def _config(base: Path, *extra: str):
    return load_config(
        None,
        [f"model.path={base}", "model.dtype=bfloat16", f"sleep.growth.d_low={D_LOW}", "eval.max_new_tokens=4", *extra],
    )


def _tensor_dtypes(ckpt: Path) -> set[str]:
    with safe_open(str(ckpt / "model.safetensors"), "pt") as f:
        return {str(f.get_tensor(k).dtype) for k in f.keys()}


def _config_dtype(ckpt: Path) -> str:
    return json.loads((ckpt / "config.json").read_text())["dtype"]


def _size(ckpt: Path) -> int:
    return (ckpt / "model.safetensors").stat().st_size


def _logits(model, tokenizer) -> torch.Tensor:
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits


@pytest.fixture(scope="module")
def bf16_base(tmp_path_factory) -> Path:
    """examples/tiny_base saved in bfloat16, with its meta."""
    model, tokenizer = load_pretrained(TINY_BASE, "bfloat16", device="cpu")
    return save_checkpoint(tmp_path_factory.mktemp("bf16") / "base", model, tokenizer, read_meta(TINY_BASE))


@pytest.fixture(scope="module")
def grown(bf16_base, tmp_path_factory) -> Path:
    """The student's starting point grown from the bf16 base by `grow_student`."""
    init = tmp_path_factory.mktemp("grown") / "init"
    grow_student(_config(bf16_base), str(bf16_base), init, cycle=1)
    return init


def _expert_bytes(ckpt: Path, itemsize: int) -> int:
    conf = json.loads((ckpt / "config.json").read_text())
    return 3 * int(conf["hidden_size"]) * D_LOW * int(conf["num_hidden_layers"]) * itemsize


def test_grow_student_saves_bf16_and_computes_what_the_parent_did(bf16_base, grown):
    assert _tensor_dtypes(bf16_base) == {"torch.bfloat16"} and _config_dtype(bf16_base) == "bfloat16"
    assert _tensor_dtypes(grown) == {"torch.bfloat16"} and _config_dtype(grown) == "bfloat16"
    # about the parent's size plus the expert, not twice it
    assert abs(_size(grown) - _size(bf16_base) - _expert_bytes(bf16_base, 2)) < 16_384
    parent, tokenizer = load_pretrained(bf16_base, "bfloat16", device="cpu")
    child, _ = load_pretrained(grown, "bfloat16", device="cpu")
    assert child.dtype == torch.bfloat16
    assert child.config.intermediate_size == parent.config.intermediate_size + D_LOW
    # Function-preserving in bf16 up to the matmul kernel's accumulation order: the new expert adds exact zeros,
    # but a CPU with bf16 instructions blocks the wider sum differently, which moves a logit by at most a rounding
    # step of bf16 (8 bits of mantissa) on some machines. The predictions are the same.
    before, after = _logits(parent, tokenizer).float(), _logits(child, tokenizer).float()
    assert torch.equal(before.argmax(-1), after.argmax(-1))
    assert (before - after).abs().max() <= 2.0**-7 * before.abs().max()


def test_grow_student_casts_a_float32_parent_to_the_config_dtype(tmp_path):
    init = tmp_path / "init"
    grow_student(_config(TINY_BASE), str(TINY_BASE), init, cycle=1)
    assert _tensor_dtypes(init) == {"torch.bfloat16"} and _config_dtype(init) == "bfloat16"


def test_the_student_trains_in_float32_and_the_export_is_bf16(bf16_base, grown, tmp_path):
    cfg = _config(bf16_base)
    student, tokenizer, record = load_student(grown)
    assert student.dtype == torch.float32 and record is not None  # float32 master weights for AdamW
    with torch.no_grad():  # "training": the expert's down columns move
        for layer in student.model.layers:
            layer.mlp.down_proj.weight[:, -D_LOW:] = 0.01
    source = tmp_path / "train" / "model"  # what the Ray Train loop checkpoints (train_loop._save)
    student.save_pretrained(source, safe_serialization=True)
    tokenizer.save_pretrained(source)
    save_growth(source, record)
    assert _tensor_dtypes(source) == {"torch.float32"}

    out = export_checkpoint(cfg, str(bf16_base), source, tmp_path / "slept", 1, {"steps": 3}, None)
    assert _tensor_dtypes(out) == {"torch.bfloat16"} and _config_dtype(out) == "bfloat16"
    assert abs(_size(out) - _size(bf16_base) - _expert_bytes(bf16_base, 2)) < 16_384
    assert read_meta(out).extra["experts"] == 1 and not (out / "growth.json").exists()
    slept, _ = load_pretrained(out, "bfloat16", device="cpu")
    trained = {n: p.to(torch.bfloat16) for n, p in student.state_dict().items()}
    assert all(torch.equal(p, trained[n]) for n, p in slept.state_dict().items())
    assert load_growth(grown) == record


def test_export_keeps_float32_when_the_config_says_so(tmp_path):
    cfg = load_config(None, [f"model.path={TINY_BASE}", f"sleep.growth.d_low={D_LOW}"])
    init = tmp_path / "init"
    grow_student(cfg, str(TINY_BASE), init, cycle=1)
    out = export_checkpoint(cfg, str(TINY_BASE), init, tmp_path / "slept", 1, {"steps": 0}, None)
    assert _tensor_dtypes(out) == {"torch.float32"} and _config_dtype(out) == "float32"


def test_cast_weights_rewrites_tensors_and_config_once(tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(TINY_BASE, ckpt)
    before, _ = load_pretrained(ckpt, device="cpu")
    assert cast_weights(ckpt, "float16") is True
    assert _tensor_dtypes(ckpt) == {"torch.float16"} and _config_dtype(ckpt) == "float16"
    assert cast_weights(ckpt, "float16") is False  # already there
    after, _ = load_pretrained(ckpt, "float16", device="cpu")
    assert all(torch.equal(p.half(), after.state_dict()[n]) for n, p in before.state_dict().items())
    with pytest.raises(FileNotFoundError):
        cast_weights(tmp_path, "bfloat16")


def test_serving_loads_in_the_requested_dtype(bf16_base):
    w = load_weights(TINY_BASE, dtype="bfloat16")
    assert w.model.dtype == torch.bfloat16 and w.version == read_meta(TINY_BASE).version
    (c,), _ = Generator().generate(w, PROMPTS[0], 4, Sampling(max_tokens=4), (), 0)
    assert c.finish_reason == "length" and c.tokens == 4 and c.text
    assert load_weights(bf16_base).model.dtype == torch.float32  # the default is unchanged


def test_a_serve_replica_loads_its_weights_in_model_dtype(bf16_base):
    from sleep_ray.wake.server import WakeServer

    replica = SimpleNamespace(cfg=_config(bf16_base), weights=None, retrieval=False)
    asyncio.run(WakeServer.func_or_class.reconfigure(replica, {"checkpoint": str(bf16_base), "version": 5}))
    assert replica.weights is not None and replica.weights.version == 5
    assert replica.weights.model.dtype == torch.bfloat16


def _spy(monkeypatch) -> list[tuple[str, str, torch.dtype]]:
    """Record (module, dtype asked, dtype loaded) of every load_pretrained the gate, the teacher and the night make."""
    from sleep_ray.roles import teacher
    from sleep_ray.wake import gate

    seen: list[tuple[str, str, torch.dtype]] = []
    real = build.load_pretrained
    for module in (build, teacher, gate):

        def spy(path, dtype="float32", device=None, name=module.__name__):
            model, tokenizer = real(path, dtype, device)
            seen.append((name, dtype, model.dtype))
            return model, tokenizer

        monkeypatch.setattr(module, "load_pretrained", spy)
    return seen


def test_the_gate_loads_serving_anchor_and_candidate_in_the_config_dtype(bf16_base, grown, monkeypatch):
    from sleep_ray.wake.gate import run_gate

    seen = _spy(monkeypatch)
    memories = [Memory(1, "m1", "document", "Zorya Quill lives in Tarnholt.")]
    gate_cfg = GateConfig(questions_per_memory=1, rehearsal_questions=3)
    result = run_gate(str(bf16_base), str(grown), memories, gate_cfg, 4, anchor=str(TINY_BASE), dtype="bfloat16")
    assert "retention" in result.metrics
    assert len(seen) == 3  # serving (writer), anchor (keeper), candidate
    assert all(asked == "bfloat16" and got == torch.bfloat16 for _, asked, got in seen)


def test_compaction_distils_in_float32_saves_in_the_config_dtype_and_gates_in_it(
    bf16_base, grown, tmp_path, monkeypatch
):
    from sleep_ray.wake.night import compact_checkpoint
    from sleep_ray.wake.store import WakeStore

    cfg = _config(bf16_base, f"sleep.growth.compact_units={D_LOW}", "serve.gate.rehearsal_questions=3")
    seen = _spy(monkeypatch)
    compacted, _, info = compact_checkpoint(cfg, WakeStore(tmp_path / "wake"), str(grown), tmp_path / "compacted")
    assert info["record"]["units_after"] == D_LOW
    assert _tensor_dtypes(Path(compacted)) == {"torch.bfloat16"} and _config_dtype(Path(compacted)) == "bfloat16"
    training = [x for x in seen if x[0] == build.__name__]
    assert training == [(build.__name__, "float32", torch.float32)]  # the copy compaction distils
    assert all(got == torch.bfloat16 for name, _, got in seen if name != build.__name__)


def test_eval_loads_in_the_config_dtype(tmp_path, tiny_model, tiny_tokenizer, handmade_world, monkeypatch):
    from sleep_ray.eval import run as eval_run

    ckpt = save_checkpoint(tmp_path / "ckpt", tiny_model, tiny_tokenizer, CheckpointMeta())  # float32 on disk
    dtypes = []
    real = eval_run.evaluate

    def evaluate(model, *args, **kwargs):
        dtypes.append(model.dtype)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(eval_run, "evaluate", evaluate)
    cfg = load_config(None, [*TINY, "model.dtype=bfloat16", "eval.max_new_tokens=2"])
    eval_run.run_eval(ckpt, handmade_world, HANDMADE, cfg, tmp_path / "eval")
    assert dtypes == [torch.bfloat16]


def test_the_dream_roles_load_in_the_config_dtype_and_keep_their_adapters_in_float32(grown):
    from sleep_ray.data import prompts
    from sleep_ray.dream.critic import TrialCritic
    from sleep_ray.dream.generator import DreamGenerator
    from sleep_ray.dream.records import DreamSample, SelfProbe

    cfg = load_config(None, ["sleep.dreaming.trial_steps=2", "sleep.dreaming.max_new_tokens=6"]).sleep.dreaming
    gen = DreamGenerator(str(grown), cfg, threads=0, seed=0, dtype="bfloat16")
    probes = [SelfProbe("m1", prompts.closed_book("Where does Ana Vel live?"), "Miravel")]
    critic = TrialCritic(str(grown), probes, cfg, growth=load_growth(grown), threads=0, dtype="bfloat16")
    for lora in (gen.lora, critic.lora):
        frozen = {p.dtype for n, p in lora.model.named_parameters() if "lora_" not in n}
        assert frozen == {torch.bfloat16} and {p.dtype for p in lora.params().values()} == {torch.float32}
    assert gen.write([("m1", "Ana Vel lives in Miravel.")], per_memory=1, seed=0) is not None
    dream = DreamSample("d0", "m1", "qa", "", "", probes[0].prompt, "", " Miravel")
    assert critic.importance([dream])[0] > 0
    assert critic.trial(dream, seed=0).memory_id == "m1"
