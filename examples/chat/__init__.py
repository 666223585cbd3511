"""The wsroute chat example."""
