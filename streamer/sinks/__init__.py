"""Where results go besides callbacks and browsers: JSON lines, CSV rows, annotated video.

Sinks only move data: they format what :mod:`streamer.results` and
:mod:`streamer.vision.draw` make and write it to a file handle or container
they are given. They do not name or rename files (see :mod:`streamer.files`).
"""
