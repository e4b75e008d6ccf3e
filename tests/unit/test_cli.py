"""The `sleep-ray` command: only working subcommands, helpful errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sleep_ray.cli import COMMANDS, build_parser, main


def test_help_lists_the_working_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([name, "system", "--help"] if name == "bench" else [name, "--help"])
    assert "--config" in capsys.readouterr().out


def test_a_misspelled_key_fails_with_exit_code_2_and_names_it(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pretrain:\n  stpes: 3\n")
    assert main(["world", "--config", str(bad)]) == 2
    assert "pretrain.stpes" in capsys.readouterr().out


def test_world_subcommand_writes_the_world(tmp_path):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "sleep_ray.cli",
            "world",
            f"run_dir={tmp_path}",
            "data.world.num_reading_docs=50",
            "data.world.num_base_people=20",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "world" / "world.jsonl").is_file()
    assert "memories" in run.stdout


def test_eval_runs_on_a_hand_written_world(tmp_path, tiny_model, tiny_tokenizer):
    from sleep_ray.models.checkpoint import CheckpointMeta, save_checkpoint
    from tests.helpers import HANDMADE, TINY

    ckpt = save_checkpoint(tmp_path / "ck", tiny_model, tiny_tokenizer, CheckpointMeta())
    code = main(
        [
            "eval",
            "--checkpoint",
            str(ckpt),
            "--out",
            str(tmp_path / "ev"),
            f"data.world_dir={HANDMADE}",
            *TINY,
            "eval.max_new_tokens=3",
        ]
    )
    assert code == 0
    assert (tmp_path / "ev" / "results.md").is_file()


def test_a_malformed_world_file_is_rejected_with_its_line_number(tmp_path, capsys):
    (tmp_path / "world.jsonl").write_text(
        '{"doc_id": "a", "kind": "bio", "use": "recall", "text": "Hi."}\n{"doc_id": \n'
    )
    assert main(["world", f"data.world_dir={tmp_path}"]) == 2
    assert "world.jsonl:2" in capsys.readouterr().out


def test_sleep_on_a_cycle_without_memories_fails_with_exit_code_2(capsys):
    from tests.helpers import HANDMADE

    assert main(["sleep", "--cycle", "99", f"data.world_dir={HANDMADE}"]) == 2
    assert "no memories of cycle 99" in capsys.readouterr().out


def test_sleep_with_an_unknown_stage_or_dreaming_without_a_seeded_model_fails_with_exit_code_2(capsys, tmp_path):
    from tests.helpers import HANDMADE

    args = ["sleep", "--cycle", "1", "--out", str(tmp_path / "c1"), f"data.world_dir={HANDMADE}"]
    assert main([*args, "--stages", "seeding,nap"]) == 2
    assert "unknown stage(s) ['nap']" in " ".join(capsys.readouterr().out.split())
    assert main([*args, "--stages", "dreaming"]) == 2
    assert "holds none: run --stages seeding first" in " ".join(capsys.readouterr().out.split())
    assert not (tmp_path / "c1").exists()


def test_bench_with_an_unknown_part_fails_with_exit_code_2(capsys, tmp_path):
    assert main(["bench", "system", "--parts", "rollout,warp", f"run_dir={tmp_path}"]) == 2
    assert "--parts: unknown part(s) ['warp']" in capsys.readouterr().out


def test_world_writes_a_test_day_stream_and_night_needs_a_sleep_record(tmp_path, capsys):
    from sleep_ray.data.schema import read_stream

    out = tmp_path / "day"
    args = ["world", f"run_dir={tmp_path}", "data.world.num_reading_docs=0", "--test-day", "foreign"]
    assert main([*args, "--day-seed", "2", "--people", "3", "--out", str(out)]) == 0
    day = read_stream(out / "stream.jsonl")
    assert len(day) == 3 and all(m.kind == "document" and m.probes for m in day)
    assert main(["night", str(tmp_path)]) == 2
    assert "no sleep record" in capsys.readouterr().out
