"""Training: the runtime-agnostic per-worker loop, its sessions, checkpoints and the Ray launcher."""
