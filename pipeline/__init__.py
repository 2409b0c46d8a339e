"""The edges of the pipeline: sources, the FTP sink, the composition root and the command line."""
