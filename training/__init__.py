"""Training: objectives, the loop, checkpoints, and building modules from a configuration."""
