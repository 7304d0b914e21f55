"""The only code that reads Keras or backend internals or patches them: flavors (one
answer per Keras), interception (the patches), tracing (what an optimizer applied),
buffers and digests (reading and hashing weights where they live), memory, hosts (what
this process holds in a multi-process run, and the engine's own store and collective)."""
