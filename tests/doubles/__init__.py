"""Test doubles for services the project talks to (real protocols, fake back ends)."""
