"""The five-user crash replay: simulated people against a target, figures per phase, a verdict."""
