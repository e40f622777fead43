"""The analysis pipeline above the parsers, the store and the analyzers: find a run's
artifact, parse it (cached in the run folder), analyze it; the sides of a diff."""
