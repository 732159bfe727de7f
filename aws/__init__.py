"""The AWS seam: clients, the lean wire, the coalescer, errors, the call recorder."""
