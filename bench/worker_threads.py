"""How long one voice embedding (torch) or one gallery product (numpy's BLAS) takes when a
worker's processes run them at once: the libraries' default threads (one a core, in every
process) against each process's share of the cores (what a prefork worker now gives its
processes: `voices.share_cores` for torch, threadpoolctl for BLAS; workers/celery_app.py).

    PYTHONPATH=. nice -n 10 python bench/worker_threads.py [--processes 2] [--embeds 8] [--rounds 3]
    PYTHONPATH=. nice -n 10 python bench/worker_threads.py --gallery 100000 [--embeds 50]

Each round runs both arms, one after the other (which goes first alternates, so that load from
elsewhere falls on both): `--processes` fresh processes (as a worker's, none has torch loaded
before) load Resemblyzer, embed once to warm up, wait for each other, then embed the same clip
`--embeds` times each, all at once. The clip is real speech: 16 s of one speaker alone in
pyannote.audio's test meeting trn06 (FEE083, as tests/e2e/test_voice.py uses), cut by its rttm
labels. Prints, per arm, the seconds one embedding took (median, fastest, slowest, over every
process and round) and the load average (1 min) at each round's start; the machine's other work
counts, so read the arms against each other, not against another run.

`--gallery ROWS`: instead of embedding, each process times the gallery's one-probe product (`G @
q`, ROWS random 128-d float32 rows, as `gallery.Gallery` searches one face) `--embeds` times.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time

import numpy as np

from consent_service.biometrics.audio import SAMPLE_RATE, decode_audio
from consent_service.demo.samples import Samples
from consent_service.settings import Settings, usable_cores

SPEAKER, RECORDING, SECONDS = "FEE083", "trn06", 16.0


def clip() -> np.ndarray:
    parts, decoded = [], {}
    for wav, who, start, end in Samples.from_settings(Settings()).speech_turns(1.5):
        if who == SPEAKER and wav.stem == RECORDING:
            if wav not in decoded:
                decoded[wav] = decode_audio(wav.read_bytes(), 600)
            parts.append(decoded[wav][int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)])
    samples = np.concatenate(parts)[: int(SECONDS * SAMPLE_RATE)]
    if len(samples) < SECONDS * SAMPLE_RATE:
        raise SystemExit(f"{SPEAKER} says less than {SECONDS} s alone in {RECORDING}")
    return samples


def embedder(samples, processes, shared, embeds, start, results) -> None:
    from consent_service.biometrics import voices

    if shared:
        voices.share_cores(processes)
    embed = voices.ResemblyzerVoiceEmbedder().embed
    embed(samples)  # loads torch and the model, and warms up
    import torch

    threads = torch.get_num_threads()
    start.wait()
    times = []
    for _ in range(embeds):
        t0 = time.perf_counter()
        embed(samples)
        times.append(time.perf_counter() - t0)
    results.put((threads, times))


def searcher(rows, processes, shared, products, start, results) -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    if shared:
        threadpool_limits(max(1, usable_cores() // processes), user_api="blas")
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((rows, 128), dtype=np.float32)
    probe = rng.standard_normal(128, dtype=np.float32)
    vectors @ probe  # warm up
    threads = max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
    start.wait()
    times = []
    for _ in range(products):
        t0 = time.perf_counter()
        vectors @ probe
        times.append(time.perf_counter() - t0)
    results.put((threads, times))


def run_arm(work, processes: int, shared: bool, embeds: int) -> tuple[set[int], list[float]]:
    ctx = mp.get_context("spawn")  # fresh interpreters: nothing of torch inherited
    start, results = ctx.Barrier(processes), ctx.Queue()
    target = searcher if isinstance(work, int) else embedder
    workers = [
        ctx.Process(target=target, args=(work, processes, shared, embeds, start, results))
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    got = [results.get(timeout=600) for _ in workers]
    for w in workers:
        w.join()
    return {threads for threads, _ in got}, [t for _, times in got for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=usable_cores())
    parser.add_argument("--embeds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gallery", type=int, default=0, metavar="ROWS")
    args = parser.parse_args()
    work = args.gallery or clip()
    library = "BLAS" if args.gallery else "torch"
    arms = {f"{library}'s default": False, "share of the cores": True}
    times: dict[str, list[float]] = {name: [] for name in arms}
    threads: dict[str, set[int]] = {name: set() for name in arms}
    loads: dict[str, list[float]] = {name: [] for name in arms}
    what = (
        f"gallery products of {args.gallery} rows"
        if args.gallery
        else f"embeddings of {SECONDS:.0f} s of {SPEAKER}/{RECORDING}"
    )
    print(
        f"{args.processes} processes on {usable_cores()} usable cores, {args.embeds} {what} "
        f"each, {args.rounds} rounds"
    )
    for r in range(args.rounds):
        order = list(arms) if r % 2 == 0 else list(reversed(arms))
        for name in order:
            loads[name].append(os.getloadavg()[0])
            used, took = run_arm(work, args.processes, arms[name], args.embeds)
            threads[name] |= used
            times[name] += took
            print(
                f"  round {r + 1} {name}: median {statistics.median(took) * 1000:.1f} ms "
                f"(load {loads[name][-1]:.2f})",
                flush=True,
            )
    for name in arms:
        t = times[name]
        print(
            f"{name} ({library} threads {sorted(threads[name])} a process): one run median "
            f"{statistics.median(t) * 1000:.1f} ms, fastest {min(t) * 1000:.1f} ms, slowest "
            f"{max(t) * 1000:.1f} ms over {len(t)}; load average at the rounds' start "
            + ", ".join(f"{x:.2f}" for x in loads[name])
        )


if __name__ == "__main__":
    main()
