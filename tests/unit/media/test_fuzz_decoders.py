"""The media decoders under coverage-guided fuzzing (tests/fuzzing.py), bounded for CI.

Every kept finding (tests/fuzz_corpus/<target>/) and every seed is replayed; then each target is
fuzzed for FUZZ_SECONDS (default 15 s, so about a minute in all) in a child process under a
memory limit and a time limit; afterwards nothing of any input may be left in /tmp or in the
child's output. The harness itself is checked: a breach of each kind comes back as a finding."""

from __future__ import annotations

import os
import time

import pytest

from tests import fuzzing

SECONDS = float(os.environ.get("FUZZ_SECONDS", "15"))


@pytest.mark.parametrize("target", fuzzing.TARGETS)
def test_kept_findings_and_seeds_replay_within_the_contract(target, tmp_path):
    files = fuzzing.corpus(target) + fuzzing.write_seeds(target, tmp_path / "seeds")
    run = fuzzing.replay(target, files, tmp_path / "replay")
    assert run.ok, run.summary()
    assert run.log.count("Executed ") == len(files), run.summary()


@pytest.mark.parametrize("target", fuzzing.TARGETS)
def test_fuzzing_finds_nothing_and_leaves_nothing_behind(target, tmp_path):
    started = time.time()
    run = fuzzing.fuzz(target, SECONDS, tmp_path)
    assert run.ok, run.summary()
    assert run.executions > 50 and run.coverage > 0, run.summary()
    # The child wrote only its grown corpus: its private TMPDIR is empty, its cwd as it was.
    assert list((tmp_path / "tmp").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "findings", "seeds", "tmp"]
    assert not fuzzing.canary_in(run.log)
    assert fuzzing.leftovers(fuzzing.temp_roots(), started, skip=[tmp_path]) == []


@pytest.mark.parametrize(
    ("breach", "says"),
    [
        ("breach-raise", "ValueError: not a MediaRejected"),
        ("breach-memory", "MemoryError"),
        ("breach-hang", "libFuzzer: timeout"),
    ],
)
def test_each_kind_of_breach_is_a_finding(breach, says, tmp_path):
    seed = tmp_path / "seed"
    seed.write_bytes(b"x" + fuzzing.CANARY)
    limits = fuzzing.Limits(input_seconds=2)
    run = fuzzing.replay(breach, [seed], tmp_path / "run", limits)
    assert not run.ok and run.returncode != 0, run.summary()
    assert says in run.log, run.summary()


def test_a_left_over_input_is_found(tmp_path):
    started = time.time() - 1
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "upload.bin").write_bytes(b"head" + fuzzing.CANARY + b"tail")
    (tmp_path / "a" / "log.txt").write_text(f"decoding {fuzzing.CANARY.hex()}\n")
    (tmp_path / "clean.txt").write_text("nothing here")
    found = fuzzing.leftovers([tmp_path], started)
    assert sorted(p.name for p in found) == ["log.txt", "upload.bin"]
    assert fuzzing.leftovers([tmp_path], started, skip=[tmp_path / "a"]) == []
    assert fuzzing.canary_in(f"bytes: {fuzzing.CANARY!r}")
