"""Request statistics: the middleware, per-route traffic with latency histograms merged across
processes, query statistics, profiling on demand, frontend reports."""
