"""Streams and models on a Ray cluster (``pip install 'streamer[ray]'``, ``streamer serve --ray ADDRESS``).

::

    front (streamer serve --ray ...): web server, event store, MQTT         Ray cluster
      ClusterRuntime ── add / remove / take(after, watched) ──────────►  CameraGroup actors ("group-N",
        ◄── results, events + snapshots, frames of watched streams ───     detached, named): sources,
                                                                          buffers, loop, models, trackers,
                                                                          event machine, an Outbox

Modules: :mod:`.options` (``[cluster]``), :mod:`.outbox` (what a group keeps
for the front), :mod:`.placement` (which group takes a stream; pure),
:mod:`.group` (the camera group, plain Python), :mod:`.front` (the front's
runtime, the only module that imports Ray, and only when it connects).
Nothing here imports Ray at import time: without ``--ray`` streamer runs as
it always did.
"""
