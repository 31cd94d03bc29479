"""The T2S (GPT) autoregressive loop in one place: sampler, onnxruntime loop, torch runner, batching engine."""
