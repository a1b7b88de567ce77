"""Exit codes of the fanwatch command, one meaning each (see docs/CLI.md)."""

OK = 0
FAILURE = 1  # the job could not run: error printed on stderr
USAGE = 2  # bad command line, bad policy or profile file
NOT_SUPPORTED = 3  # fanotify (or the requested mode) is unavailable here
TIMEOUT = 4  # --timeout elapsed before --count events were seen
WATCHDOG = 5  # guard: the decision loop stalled and the group was closed
BROKEN_PIPE = 141  # the reader of our output went away (128 + SIGPIPE)
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
TERMINATED = 143  # SIGTERM (128 + SIGTERM), after a clean stop
