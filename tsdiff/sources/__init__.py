"""Where metrics come from besides files: a Prometheus server (:mod:`tsdiff.sources.prometheus`)."""
