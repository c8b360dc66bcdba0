"""The run: the user's options and the plan made from them, the run directory, the parent that
supervises worker processes, the worker entry, and the shared memory they meet in."""
