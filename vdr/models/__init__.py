"""Finding and loading models: the embedder, the reranker, the multi-vector model, LoRA adapters."""
