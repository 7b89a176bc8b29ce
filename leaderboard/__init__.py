"""Static leaderboard site generation from da2k result files."""
