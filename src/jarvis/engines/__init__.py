"""Model engines: embedded llama.cpp, an Ollama server, any OpenAI-compatible server."""
