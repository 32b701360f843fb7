"""rewardsearch: search for the reward functions that make GRPO post-training work."""

__version__ = "0.1.0"
