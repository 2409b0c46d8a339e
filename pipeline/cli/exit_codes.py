"""The documented exit codes of `beemon-uploader`."""

OK = 0  #: success: everything asked for was done
FAILURES_REMAIN = 1  #: the run worked, but files were not delivered, a day's manifest did not go up, or a check failed
NOT_STARTED = 1  #: `run` could not start for a reason a new start may not meet (its settings reader was killed)
BAD_USAGE = 2  #: bad command line or settings; nothing was attempted
OUTBOX_IN_USE = 2  #: another uploader works this outbox (the line names its PID); nothing was attempted
