"""Benchmarks behind `linebridge bench ...`: each reports figures as ratios against a
baseline measured in the same run, because the machines they run on are shared and noisy."""
