"""FlashSight gateway: the one HTTP entry point in front of the vision and reasoner services."""
