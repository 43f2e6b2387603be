"""Private autograd.Function classes: analytic backward passes behind the public loss functions."""
