"""The pre-scale engine and the runner that carries it into AWS."""
