"""pgclaims: statistical tests of the claims of "A Closer Look at Deep Policy Gradients"."""
