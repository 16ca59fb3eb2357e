"""Test harness for enforcement endpoints: Hypothesis strategies derived from a deployment
(`strategies`), targets (`targets`: an HTTP endpoint or an in-process callable), the fuzz
campaign with :func:`analyzer.decide.Decider.decide` as its oracle (`fuzz`), and replay of saved
failures (`replay`)."""
