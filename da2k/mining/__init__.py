"""Building DA-2K-style benchmarks: candidate points, expert votes, the consensus rule, storage.

points     candidate point pairs inside segments (SAM or Felzenszwalb)
experts    expert predictors (the `--model` spec grammar) registered as expert runs
consensus  votes, the paper's auto_agreed / needs_human rule, the gold draw
writer     one transaction per image
miner      the orchestration behind `da2k mine` (scan, prefetch, vote, write)
"""

from da2k.mining.consensus import Vote, audit_draw, decide, expert_values, vote
from da2k.mining.experts import Expert, load_experts
from da2k.mining.miner import ImageFile, Miner, MineReport, in_shard, mine, parse_shard, scan_images

__all__ = [
    "Expert",
    "ImageFile",
    "MineReport",
    "Miner",
    "Vote",
    "audit_draw",
    "decide",
    "expert_values",
    "in_shard",
    "load_experts",
    "mine",
    "parse_shard",
    "scan_images",
    "vote",
]
