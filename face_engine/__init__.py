"""Face detection, alignment, embedding and 1:N search on insightface models via onnxruntime."""
