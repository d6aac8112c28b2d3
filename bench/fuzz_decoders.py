"""A longer fuzz run of the media decoders (tests/fuzzing.py: atheris in a child process under a
memory and a time limit), printing per target the executions, the coverage reached, the corpus
grown and the findings.

Run: `python bench/fuzz_decoders.py --seconds N [--targets image,video,audio] [--keep DIR]`
(N seconds per target, default 60). A finding (crash-*, timeout-*, oom-*) does not stop the
target: the child is started again, from the corpus grown so far, until its seconds are spent.
Findings are copied to DIR (default: a temporary folder, printed); once fixed, move each into
tests/fuzz_corpus/<target>/, which every test run replays. CI runs the same, 15 s per target
(tests/unit/media/test_fuzz_decoders.py).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests import fuzzing  # noqa: E402


def _first_reason(log: str) -> str:
    for line in log.splitlines():
        if line.startswith(("ALARM", "==")) or "Error:" in line or "Error" in line.split(":")[0]:
            return line.strip()[:120]
    return "?"


def fuzz_target(target: str, seconds: float, work: Path, keep: Path) -> dict:
    """Fuzz one target for `seconds` in all, restarting the child after each finding."""
    totals = {"executions": 0, "coverage": 0, "features": 0, "corpus": 0, "rss": 0}
    findings: list[tuple[Path, str]] = []
    started = time.monotonic()
    runs = 0
    while (left := seconds - (time.monotonic() - started)) >= 1:
        runs += 1
        run = fuzzing.fuzz(target, left, work)
        totals["executions"] += run.executions
        totals["coverage"] = max(totals["coverage"], run.coverage)
        totals["features"] = max(totals["features"], run.features)
        totals["corpus"] = run.corpus_units or totals["corpus"]
        totals["rss"] = max(totals["rss"], run.peak_rss_mb)
        for path in run.findings:
            kept = keep / target / path.name
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), kept)
            findings.append((kept, _first_reason(run.log)))
        if run.ok or (run.timed_out and not run.findings):
            break
    elapsed = time.monotonic() - started
    return {**totals, "seconds": elapsed, "runs": runs, "findings": findings}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="per target")
    parser.add_argument("--targets", default=",".join(fuzzing.TARGETS))
    parser.add_argument("--keep", type=Path, help="where findings are copied")
    args = parser.parse_args()
    targets = [t for t in args.targets.split(",") if t]
    keep = args.keep or Path(tempfile.mkdtemp(prefix="fuzz-findings-"))
    print(f"fuzzing {', '.join(targets)} for {args.seconds:g} s each; findings go to {keep}")
    print(
        f"{'target':8} {'seconds':>8} {'executions':>11} {'exec/s':>8} {'coverage':>9} "
        f"{'features':>9} {'corpus':>7} {'peak RSS':>9} {'findings':>9}"
    )
    failed = 0
    for target in targets:
        with tempfile.TemporaryDirectory(prefix=f"fuzz-{target}-") as work:
            r = fuzz_target(target, args.seconds, Path(work), keep)
        failed += len(r["findings"])
        rate = r["executions"] / r["seconds"] if r["seconds"] else 0.0
        print(
            f"{target:8} {r['seconds']:8.0f} {r['executions']:11,} {rate:8.0f} "
            f"{r['coverage']:9} {r['features']:9} {r['corpus']:7} {r['rss']:7} MB "
            f"{len(r['findings']):9}",
            flush=True,
        )
        for path, reason in r["findings"]:
            print(f"    {path}: {reason}")
    print(
        "coverage: edges of instrumented Python (Pillow's parsers and ours); FFmpeg and the C "
        "image codecs are mutated but not measured."
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
