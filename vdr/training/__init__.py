"""The training stages' shared setup: trainer arguments, LoRA, checkpoints, torchrun across processes and nodes."""
