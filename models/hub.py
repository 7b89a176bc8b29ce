"""Files from the Hugging Face hub, failing fast: the local cache first, then one quick check
that the hub answers at all, so an offline machine gets one line at once instead of half a
minute of retries (huggingface_hub retries unreachable hosts with back-off)."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from .errors import WeightsUnavailable

PROBE_TIMEOUT_S = 5.0


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def hub_offline_reason() -> str | None:
    """Why the hub cannot be asked right now (offline by setting, or unreachable), or None."""
    if _truthy("HF_HUB_OFFLINE") or _truthy("DA2K_OFFLINE"):
        return "offline: HF_HUB_OFFLINE=1"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        # One HEAD request honouring the proxy settings; any HTTP answer means reachable.
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=PROBE_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"the hub at {endpoint} is unreachable: {reason}"
    return None


def hub_file(repo_id: str, filename: str, *, repo_type: str | None = None, advice: str | None = None) -> Path:
    """`filename` of the hub repo `repo_id`, from the cache or downloaded (and cached).

    Raises `WeightsUnavailable` naming the file and the repo when it is neither cached nor
    obtainable; `advice` replaces the default hint (how this command points at a local copy)."""
    from huggingface_hub import hf_hub_download

    kind = "dataset" if repo_type == "dataset" else "repo"
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename, repo_type=repo_type, local_files_only=True))
    except Exception:  # noqa: BLE001 -- not in the cache (or a broken cache entry): ask the hub
        pass
    reason = hub_offline_reason()
    if reason is None:
        try:
            return Path(hf_hub_download(repo_id=repo_id, filename=filename, repo_type=repo_type))
        except Exception as exc:  # noqa: BLE001 -- missing repo or file, auth, network: all user-fixable
            reason = type(exc).__name__
    problem = f"cannot get {filename} from the hub {kind} {repo_id} ({reason})"
    raise WeightsUnavailable(problem) if advice is None else WeightsUnavailable(problem, advice)
