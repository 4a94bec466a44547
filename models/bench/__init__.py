"""`graphc bench`: the side-by-side harness, its runner processes, peers and report."""
