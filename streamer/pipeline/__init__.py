"""Moving frames from sources to models to deliveries: buffers, the inference loop, dispatch."""
