"""The broker's queues: the worker's Celery app routes to them (`workers`), the operator console
and the CLI name them (queue depths, `consent-service worker -Q`)."""

MATCHING_QUEUE = "matching"  # gate jobs and enrollments: the face and voice models
WEBHOOKS_QUEUE = "webhooks"  # webhook deliveries: a slow receiver never delays the gate
DEFAULT_QUEUE = "default"  # everything else (housekeeping, sweeps)
ALL_QUEUES = (MATCHING_QUEUE, WEBHOOKS_QUEUE, DEFAULT_QUEUE)
# GALLERY_SHARDS > 1 (biometrics/shards.py): each shard's searches on a queue of its own, served
# by that shard's workers; the merge of their answers on one queue all shard workers serve.
GALLERY_MERGE_QUEUE = "gallery.merge"
SHARD_MODALITIES = ("face", "voice")


def shard_queue(modality: str, shard: int) -> str:
    """The queue of one shard of one modality's gallery: `gallery.face.shard.0`, ..."""
    return f"gallery.{modality}.shard.{shard}"


def gallery_queues(shards: int) -> tuple[str, ...]:
    """Every queue of a gallery split into `shards` (none when it is whole): each shard's queue of
    every modality, then the merges' (what the health page and the metrics report)."""
    if shards < 2:
        return ()
    return (
        *(shard_queue(m, k) for k in range(shards) for m in SHARD_MODALITIES),
        GALLERY_MERGE_QUEUE,
    )


def shard_worker_queues(shard: int) -> tuple[str, ...]:
    """What the worker of `shard` consumes: that shard of every modality, and the merges."""
    return (*(shard_queue(m, shard) for m in SHARD_MODALITIES), GALLERY_MERGE_QUEUE)
