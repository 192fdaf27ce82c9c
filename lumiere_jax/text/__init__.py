"""Text handling below the models: the tokenizer of captions and prompts."""
