"""da2k: score depth models on DA-2K, build DA-2K-style benchmarks, train V2-style models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("da2k")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
