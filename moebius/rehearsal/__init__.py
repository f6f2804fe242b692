"""Rehearsal scale: the full-scale code paths on small generated data and random-valued weights in the official formats."""
