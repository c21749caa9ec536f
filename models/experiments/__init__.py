"""Online experiments: assignment, statistics, sequential inference and interleaving (pure maths)."""
