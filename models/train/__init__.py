"""Depth Anything V2-style training: losses, RGB-D readers, a torchrun/DDP engine, and the
teacher -> pseudo-label -> student -> metric stages behind `da2k train ...`."""
