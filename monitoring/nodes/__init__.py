"""Node reports: each process reports its host's figures and its own traffic tallies."""
