"""Static leaderboard site generation from da2k result files.

from da2k.leaderboard import build_site
build_site(["results/"], "site/", images="DA-2K/")
"""

from da2k.leaderboard.results import Entry, add_result, load_result
from da2k.leaderboard.site import build_site

__all__ = ["Entry", "add_result", "build_site", "load_result"]
