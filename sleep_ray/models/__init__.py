"""Models: the tiny Llama built from config, the locally trained tokenizer, checkpoints and generation."""
