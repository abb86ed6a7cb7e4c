"""Model library: motion representation, the VQ-VAE motion tokenizer and the motion-aware LLM."""
