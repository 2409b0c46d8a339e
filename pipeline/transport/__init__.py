"""The seam between the sink and a server: what every transport offers, and the shared bandwidth cap."""
