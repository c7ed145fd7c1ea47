"""Run a fine-tuned model on Ray: batch inference on Ray Data, online serving on Ray Serve."""
