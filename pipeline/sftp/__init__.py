"""SFTP (SSH File Transfer Protocol) behind the transport seam, with asyncssh (the `[sftp]` extra)."""
