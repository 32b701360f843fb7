"""Evaluation: batched greedy generation, scoring, metrics (statistics arrive with the report issue)."""
