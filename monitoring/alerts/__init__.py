"""Alert rules over a catalog of metrics: evaluation, channels, delivery, silences, the watchdog."""
