"""The checkpoints folder of a training stage: resume only a run with the same fingerprint,
only from a complete checkpoint."""

import json

from vdr.training.checkpoints import COMPLETE, FINGERPRINT, LIVE_COPY, Checkpoints


def make_checkpoint(folder, step, complete=True):
    checkpoint = folder / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text("{}")
    if complete:
        (checkpoint / COMPLETE).write_text(f"step {step}\n")
    return checkpoint


def start(tmp_path, learning_rate=1e-4):
    (tmp_path / "train.parquet").write_bytes(b"rows")
    return Checkpoints(
        tmp_path / "checkpoints",
        tmp_path / "live",
        {"train": {"learning_rate": learning_rate}},
        [tmp_path / "train.parquet"],
    )


def test_a_first_run_starts_afresh_and_records_its_fingerprint(tmp_path):
    checkpoints = start(tmp_path)
    assert checkpoints.resume is None
    assert json.loads((tmp_path / "checkpoints" / FINGERPRINT).read_text())["params"] == {
        "train": {"learning_rate": 1e-4}
    }


def test_the_same_run_resumes_from_its_newest_complete_checkpoint(tmp_path, capsys):
    start(tmp_path)
    make_checkpoint(tmp_path / "checkpoints", 2)
    make_checkpoint(tmp_path / "checkpoints", 4)
    make_checkpoint(tmp_path / "checkpoints", 6, complete=False)  # cut short by a kill
    checkpoints = start(tmp_path)
    assert checkpoints.resume == str(tmp_path / "checkpoints" / "checkpoint-4")
    assert "resuming from checkpoint-4" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["checkpoint-4", FINGERPRINT]


def test_checkpoints_of_another_run_are_discarded(tmp_path, capsys):
    start(tmp_path)
    make_checkpoint(tmp_path / "checkpoints", 2)
    checkpoints = start(tmp_path, learning_rate=2e-4)
    assert checkpoints.resume is None
    assert "discarding checkpoints of a run with other parameters or inputs" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == [FINGERPRINT]
    (tmp_path / "train.parquet").write_bytes(b"other rows")  # other data: discarded as well
    make_checkpoint(tmp_path / "checkpoints", 2)
    assert (
        Checkpoints(
            tmp_path / "checkpoints",
            tmp_path / "live",
            {"train": {"learning_rate": 2e-4}},
            [tmp_path / "train.parquet"],
        ).resume
        is None
    )


def test_the_dvclive_history_is_restored_from_the_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # DVCLive opens the DVC repository around the working directory: not this project's
    start(tmp_path)
    saved = make_checkpoint(tmp_path / "checkpoints", 2) / LIVE_COPY
    (saved / "plots" / "metrics").mkdir(parents=True)
    (saved / "plots" / "metrics" / "loss.tsv").write_text("step\tloss\n0\t0.9\n1\t0.8\n")
    (saved / "metrics.json").write_text(json.dumps({"step": 1, "loss": 0.8}))
    (tmp_path / "live" / "plots" / "metrics").mkdir(parents=True)
    (tmp_path / "live" / "plots" / "metrics" / "loss.tsv").write_text(
        "step\tloss\n0\t0.9\n1\t0.8\n2\t0.7\n"
    )  # logged after the checkpoint
    checkpoints = start(tmp_path)
    live_callback, _ = checkpoints.callbacks()
    assert live_callback.live.step == 2
    assert (tmp_path / "live" / "plots" / "metrics" / "loss.tsv").read_text() == "step\tloss\n0\t0.9\n1\t0.8\n"


def test_a_finished_run_keeps_only_its_fingerprint(tmp_path):
    checkpoints = start(tmp_path)
    make_checkpoint(tmp_path / "checkpoints", 2)
    checkpoints.finish()
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == [FINGERPRINT]
