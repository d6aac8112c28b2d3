"""The web process never loads the voice model: torch, Resemblyzer, PyAV and webrtcvad are
imported by workers only, on first use."""

from __future__ import annotations

import os
import subprocess
import sys

HEAVY = ("torch", "resemblyzer", "av", "webrtcvad")


def test_the_web_app_and_its_voice_pages_import_no_voice_model(tmp_path):
    code = (
        "import sys\n"
        "from consent_service.app import create_app\n"
        "from consent_service.settings import Settings\n"
        "import consent_service.biometrics.views, consent_service.gate.service\n"
        "import consent_service.biometrics.voice_service, consent_service.services\n"
        f"app = create_app(Settings(consent_service_home={str(tmp_path)!r}))\n"
        "from consent_service.runtime import services\n"
        "with app.app_context():\n"
        "    services().voice_matching\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_each_process_gets_its_share_of_the_cores(monkeypatch):
    from consent_service.biometrics import voices

    monkeypatch.setattr(voices, "_encoder", None)  # nothing loaded: only recorded
    monkeypatch.setattr(voices, "_torch_threads", None)
    shares = {(p, c): voices.share_cores(p, cores=c) for p, c in [(1, 2), (2, 2), (3, 2), (2, 5)]}
    assert shares == {(1, 2): 2, (2, 2): 1, (3, 2): 1, (2, 5): 2}
    assert voices._torch_threads == 2


def test_torch_runs_the_share_once_the_model_loads_and_after():
    """A real torch: the share recorded before the lazy load is what the loaded model runs
    with; one given after the load applies at once. Recording it imports nothing."""
    code = (
        "import sys\n"
        "from consent_service.biometrics import voices\n"
        "voices.share_cores(2, cores=6)\n"
        f"assert not [m for m in {HEAVY!r} if m in sys.modules]\n"
        "voices.ResemblyzerVoiceEmbedder().embed(__import__('numpy').zeros(16000))\n"
        "import torch\n"
        "print(torch.get_num_threads())\n"
        "voices.share_cores(1, cores=5)\n"
        "print(torch.get_num_threads())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["3", "5"]


def test_a_prefork_worker_s_processes_embed_with_their_share(tmp_path):
    """`workers.celery_app` in a worker: `worker_init` (sent while Celery builds the worker,
    before the pool forks) gives each process cores // processes threads; a process forked from
    it, as prefork's are, runs the voice model's torch and numpy's BLAS (the gallery's products)
    with that many. (scipy's own OpenBLAS, which Resemblyzer's imports load, keeps its default:
    nothing on our path calls it.) A pool that runs tasks in the worker's own process (solo)
    keeps every core."""
    code = (
        "import os\n"
        "import workers.celery_app as entry\n"
        "from consent_service.biometrics import voices\n"
        "from consent_service.settings import usable_cores\n"
        "entry.celery.WorkController(concurrency=4, pool_cls='solo')\n"
        "assert voices._torch_threads == usable_cores(), voices._torch_threads\n"
        "entry.celery.WorkController(concurrency=2)\n"  # prefork, Celery's default pool
        "read, write = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    voices._resemblyzer()\n"
        "    import torch\n"
        "    from threadpoolctl import threadpool_info\n"
        "    blas = {p['num_threads'] for p in threadpool_info() if 'numpy' in p['filepath']}\n"
        "    os.write(write, f'{torch.get_num_threads()} {sorted(blas)}'.encode())\n"
        "    os._exit(0)\n"
        "os.wait()\n"
        "print(usable_cores(), os.read(read, 64).decode())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENT_")}
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "GALLERY_SHARD", "GALLERY_SHARDS"):
        env.pop(name, None)
    env |= {"CONSENT_SERVICE_HOME": str(tmp_path), "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    cores, threads, blas = out.stdout.splitlines()[-1].split(" ", 2)
    share = max(1, int(cores) // 2)
    assert (int(threads), blas) == (share, f"[{share}]")
