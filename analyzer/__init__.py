"""agentperm: static policy analyzer and test harness for AI-agent permissions."""

__version__ = "0.1.0"
