"""Run tracking outside training: plots, the runs table and comparison, the TensorBoard server."""
