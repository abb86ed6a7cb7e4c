"""The motion-aware LLM: vocabulary, prompts, training sequences, checkpoints, inference."""
