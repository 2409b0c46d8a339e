"""Where files come from: the watchdog source, the backfill scan and the job stream built from them."""
