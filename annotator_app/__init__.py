"""The Gradio annotation app (imports da2k's storage layer, nothing else of it)."""
