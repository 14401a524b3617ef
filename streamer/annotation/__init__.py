"""``streamer annotate``: video files in, annotated video and result files out."""
