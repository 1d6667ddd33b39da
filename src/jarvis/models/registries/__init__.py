"""Sources of models: the HuggingFace Hub, the Ollama registry, plain URLs."""
