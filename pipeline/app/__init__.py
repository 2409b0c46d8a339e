"""The composition root: options (the only reader of settings), Uploader, statistics, metrics and logs."""
