"""Tests of the emulator package (test_emulator.py tells how to run them)."""
