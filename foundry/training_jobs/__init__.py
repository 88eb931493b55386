"""Training jobs: their state machine, progress and cancellation, independent of the queue that runs them."""
