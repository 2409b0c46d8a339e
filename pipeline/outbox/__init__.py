"""The local side shared by the stream and the sink: file state, leases and the deletion rules."""
