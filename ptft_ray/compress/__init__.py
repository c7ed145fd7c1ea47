"""Compress and explain a fine-tuned model: distillation, int8 quantization, attributions."""
